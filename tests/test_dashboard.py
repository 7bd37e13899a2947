"""The admin's storage dashboard: staff only, linked from the index, its numbers from
the database and the event record, no provider called to draw it."""

import io
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from storage_backends.breaker import CircuitBreaker
from tests.factories import video_upload
from videos import services
from videos.models import PendingDeletion, StorageEvent, Video

DASHBOARD_URL = "/admin/storage/"


def signed_in(user):
    client = Client()
    client.force_login(user)
    return client


def past_event(days_ago, provider, fallen_from="", outcome="stored", via="upload"):
    return StorageEvent.objects.create(
        created_at=timezone.now() - timedelta(days=days_ago),
        outcome=outcome,
        via=via,
        provider=provider if outcome == "stored" else "",
        fallen_from=fallen_from,
        reason_kind="fault" if fallen_from else "",
        name=f"{provider}:videos/past.mp4",
    )


@pytest.fixture
def storage_history(settings, s3_outage, staff_user):
    """Videos on S3 and on local disk, some of them after S3 failed them; events of
    earlier days; one deletion waiting for a retry, and the removal of what the upload
    S3 failed may have left there."""
    settings.STORAGE_PROVIDERS = ["s3", "local"]
    s3_outage.stop()
    for title in ("On S3", "On S3 too"):
        services.create_video(owner=staff_user, title=title, file=video_upload(size=6000))
    s3_outage.start()
    services.create_video(owner=staff_user, title="Fell back", file=video_upload(size=9000))
    s3_outage.stop()
    for days_ago, provider, fallen_from in [(1, "s3", ""), (1, "local", "s3"), (3, "local", ""), (29, "s3", "")]:
        past_event(days_ago, provider, fallen_from)
    past_event(2, "", fallen_from="s3", outcome="failed")
    past_event(2, "s3", via="move")  # a move is no upload
    past_event(31, "s3")  # before the chart's first day
    PendingDeletion.objects.create(name="s3:videos/gone.mp4", provider="s3", next_attempt_at=timezone.now())


def test_the_admin_index_links_to_the_dashboard(staff_user):
    page = signed_in(staff_user).get("/admin/")

    assert f'href="{DASHBOARD_URL}"' in page.content.decode()


def test_only_staff_see_the_dashboard(user):
    assert Client().get(DASHBOARD_URL).status_code == 302  # to the login page
    assert signed_in(user).get(DASHBOARD_URL).status_code == 302


def test_the_numbers_come_from_the_database_and_the_event_record(staff_user, storage_history):
    data = signed_in(staff_user).get(DASHBOARD_URL).context["dashboard"]

    held = {row.report.name: (row.videos, row.bytes) for row in data.providers}
    assert held == {"cloudinary": (0, 0), "s3": (2, 12000), "local": (1, 9000)}
    assert sum(videos for videos, _ in held.values()) == Video.objects.count()
    assert len(data.chart.days) == 30
    by_day = {day.day: (day.stored, day.fell_back, day.failed) for day in data.chart.days if day.stored or day.failed}
    today = timezone.localdate()
    assert by_day == {
        today: (3, 1, 0),
        today - timedelta(days=1): (2, 1, 0),
        today - timedelta(days=2): (0, 0, 1),
        today - timedelta(days=3): (1, 0, 0),
        today - timedelta(days=29): (1, 0, 0),
    }
    assert (data.uploads, data.fallbacks, data.failed) == (7, 2, 1)
    assert data.pending_deletions == 2 and data.pending_by_provider == {"s3": 2}


def test_a_provider_that_failed_shows_its_reason_and_its_open_breaker(staff_user, settings, storage_history):
    settings.STORAGE_BREAKER_FAILURES = 1
    CircuitBreaker("s3").record_failure("EndpointConnectionError: Could not connect")

    page = signed_in(staff_user).get(DASHBOARD_URL).content.decode()

    assert "EndpointConnectionError: Could not connect" in page
    assert "open until " in page
    assert "aws-secret-for-tests" not in page


def test_the_page_costs_a_bounded_number_of_queries(staff_user, storage_history, django_assert_max_num_queries):
    client = signed_in(staff_user)
    with django_assert_max_num_queries(8):  # session, user, and one query per part of the page
        client.get(DASHBOARD_URL)


def test_the_last_sweeps_are_shown_as_cleanup_orphans_recorded_them(staff_user, media_root):
    from django.core.management import call_command

    from videos import housekeeping

    client = signed_in(staff_user)
    assert "No sweep has run yet" in client.get(DASHBOARD_URL).content.decode()

    for found in (7, 4):
        housekeeping.record_sweep("s3", found=found, deleted=found - 1)
    call_command("cleanup_orphans", "--provider", "local", stdout=io.StringIO())
    page = client.get(DASHBOARD_URL).content.decode()

    today = timezone.localtime().strftime("%Y-%m-%d")
    assert f'<td>s3</td><td>{today}' in page and '<td class="number">4</td><td class="number">3</td>' in page
    assert '<td class="number">7</td><td class="number">6</td>' in page  # the one before it too
    assert f'<td>local</td><td>{today}' in page and '<td class="number">0</td><td class="number">0</td>' in page
