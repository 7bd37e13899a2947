"""What the admin's storage dashboard shows, from the database, the event record and
the breakers' record: no provider is called to draw it.

``storage_dashboard()`` gathers it; ``UploadChart`` lays out the uploads of the last
``CHART_DAYS`` days as bars for the inline SVG the template draws (no script, no
chart library).
"""

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from datetime import timezone as dt_timezone

from django.conf import settings
from django.db.models import Count, Min, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from storage_backends import health, registry
from videos import housekeeping
from videos.models import PendingDeletion, StorageEvent, Video

SWEEPS_SHOWN = 3  # per provider

CHART_DAYS = 30
# What counts as an upload: a file that came in, not one copied between providers.
UPLOAD_VIAS = (StorageEvent.Via.UPLOAD, StorageEvent.Via.DIRECT)
PROVIDER_COLOURS = {"cloudinary": "#3448c5", "s3": "#c7511f", "local": "#5a6268"}
FALLBACK_COLOUR = "#ba2121"

# The chart's drawing area, in SVG user units.
CHART_WIDTH = 720
CHART_HEIGHT = 220
PLOT_LEFT = 40
PLOT_RIGHT = 24  # room for the last day's label
PLOT_TOP = 10
PLOT_BOTTOM = 190  # the baseline; day labels go under it
BAR_GAP = 4


def _moment(seconds):
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=dt_timezone.utc)


@dataclass(frozen=True)
class ProviderRow:
    report: health.ProviderReport
    label: str
    in_chain: bool
    videos: int
    bytes: int

    @property
    def colour(self):
        return PROVIDER_COLOURS.get(self.report.name, "#333")

    @property
    def open_until(self):
        return _moment(self.report.record.open_until)

    @property
    def last_success(self):
        return _moment(self.report.record.last_success)

    @property
    def last_failure(self):
        return _moment(self.report.record.last_failure)


@dataclass(frozen=True)
class Segment:
    provider: str
    count: int
    y: float
    height: float
    colour: str


@dataclass(frozen=True)
class DayBar:
    day: object  # a date
    stored: int
    fell_back: int
    failed: int
    x: float
    width: float
    segments: list
    point_y: float  # where the day's fallbacks are marked

    @property
    def centre(self):
        return self.x + self.width / 2

    @property
    def summary(self):
        parts = ", ".join(f"{segment.provider} {segment.count}" for segment in self.segments)
        text = f"{self.day:%d %b}: {self.stored} stored" + (f" ({parts})" if parts else "")
        text += f", {self.fell_back} after a fallback"
        return text + (f", {self.failed} refused by every provider" if self.failed else "")


@dataclass(frozen=True)
class UploadChart:
    days: list
    scale_max: int
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT
    plot_left: int = PLOT_LEFT
    plot_right: int = CHART_WIDTH - PLOT_RIGHT
    plot_top: int = PLOT_TOP
    baseline: int = PLOT_BOTTOM
    plot_height: int = PLOT_BOTTOM - PLOT_TOP
    fallback_colour: str = FALLBACK_COLOUR
    legend: list = field(default_factory=list)

    @property
    def fallback_points(self):
        """The SVG ``points`` of the line joining each day's fallbacks."""
        return " ".join(f"{day.centre:.1f},{day.point_y:.1f}" for day in self.days)

    @property
    def ticks(self):
        """``(value, y)`` of the scale's labels: zero, half and the top."""
        return [(value, self._y(value)) for value in (0, self.scale_max // 2, self.scale_max)]

    @property
    def label_days(self):
        """Every fifth day, and the last, labelled under the bars."""
        return [day for index, day in enumerate(self.days) if index % 5 == 0 or index == len(self.days) - 1]

    def _y(self, value):
        return self.baseline - (self.baseline - self.plot_top) * value / self.scale_max


@dataclass(frozen=True)
class StorageDashboard:
    providers: list
    chart: UploadChart
    uploads: int
    fallbacks: int
    failed: int
    pending_deletions: int
    pending_by_provider: dict
    oldest_pending: object
    sweeps: list  # OrphanSweep rows


def storage_dashboard(today=None):
    today = today or timezone.localdate()
    return StorageDashboard(
        providers=provider_rows(),
        chart=(chart := upload_chart(today)),
        uploads=sum(day.stored for day in chart.days),
        fallbacks=sum(day.fell_back for day in chart.days),
        failed=sum(day.failed for day in chart.days),
        **pending_deletions(),
        sweeps=last_sweeps(),
    )


def provider_rows():
    """Every provider Stremora knows, with its state and the videos it holds (one query)."""
    per_provider = Video.objects.order_by().values("storage_provider")
    held = {
        row["storage_provider"]: row for row in per_provider.annotate(videos=Count("id"), bytes=Sum("size_bytes"))
    }
    reports = health.provider_reports(registry.PROVIDER_NAMES)
    return [
        ProviderRow(
            report=report,
            label=registry.spec(report.name).label,
            in_chain=report.name in settings.STORAGE_PROVIDERS,
            videos=held.get(report.name, {}).get("videos", 0),
            bytes=held.get(report.name, {}).get("bytes") or 0,
        )
        for report in reports
    ]


def upload_chart(today):
    """Uploads per provider per day over the last ``CHART_DAYS`` days, with the fallbacks."""
    first_day = today - timedelta(days=CHART_DAYS - 1)
    start = timezone.make_aware(datetime.combine(first_day, time.min))
    counts = (
        StorageEvent.objects.filter(created_at__gte=start, via__in=UPLOAD_VIAS)
        .annotate(day=TruncDate("created_at"))
        .order_by()
        .values("day", "outcome", "provider")
        .annotate(events=Count("id"), fell_back=Count("id", filter=~Q(fallen_from="")))
    )
    stored, fell_back, failed = {}, {}, {}
    for row in counts:
        if row["outcome"] == StorageEvent.Outcome.FAILED:
            failed[row["day"]] = failed.get(row["day"], 0) + row["events"]
            continue
        stored.setdefault(row["day"], {})[row["provider"]] = row["events"]
        fell_back[row["day"]] = fell_back.get(row["day"], 0) + row["fell_back"]

    days = [first_day + timedelta(days=offset) for offset in range(CHART_DAYS)]
    busiest = max(sum(stored.get(day, {}).values()) for day in days)
    scale_max = max(2, busiest + busiest % 2)  # even, so the middle tick is a whole number
    slot = (CHART_WIDTH - PLOT_LEFT - PLOT_RIGHT) / CHART_DAYS
    plot_height = PLOT_BOTTOM - PLOT_TOP
    bars = []
    for index, day in enumerate(days):
        segments, top = [], PLOT_BOTTOM
        for provider in registry.PROVIDER_NAMES:
            count = stored.get(day, {}).get(provider, 0)
            if count:
                height = plot_height * count / scale_max
                top -= height
                segments.append(Segment(provider, count, top, height, PROVIDER_COLOURS.get(provider, "#333")))
        bars.append(
            DayBar(
                day=day,
                stored=sum(segment.count for segment in segments),
                fell_back=fell_back.get(day, 0),
                failed=failed.get(day, 0),
                x=PLOT_LEFT + index * slot + BAR_GAP / 2,
                width=slot - BAR_GAP,
                segments=segments,
                point_y=PLOT_BOTTOM - plot_height * fell_back.get(day, 0) / scale_max,
            )
        )
    legend = [(registry.spec(name).label, PROVIDER_COLOURS.get(name, "#333")) for name in registry.PROVIDER_NAMES]
    return UploadChart(days=bars, scale_max=scale_max, legend=legend)


def pending_deletions():
    per_provider = PendingDeletion.objects.order_by().values("provider").annotate(count=Count("id"))
    by_provider = {row["provider"]: row["count"] for row in per_provider}
    oldest = PendingDeletion.objects.aggregate(oldest=Min("created_at"))["oldest"]
    return {
        "pending_deletions": sum(by_provider.values()),
        "pending_by_provider": by_provider,
        "oldest_pending": oldest,
    }


def last_sweeps():
    """The last orphan sweeps of each provider, newest first, as ``cleanup_orphans`` recorded them."""
    return [sweep for sweeps in housekeeping.last_sweeps(SWEEPS_SHOWN).values() for sweep in sweeps]
