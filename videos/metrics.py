"""Prometheus metrics, served at ``/metrics`` (``videos.views.metrics``).

Counters and histograms are kept by the process that saw the event: the storage
signals (``storage_backends.signals``) feed them. Under gunicorn, prometheus-client's
multiprocess mode writes each worker's values to files in ``PROMETHEUS_MULTIPROC_DIR``
(``gunicorn.conf.py`` sets it up) and a scrape adds every worker's files up; without
the variable (``runserver``, the tests) this process's own values are served.

The rest is read when Prometheus scrapes, from the breakers' record and the
database, never from a provider. Labels are provider names and fixed words, never a
file name or a user.
"""

import os

from django.conf import settings
from django.db.models import Count, Sum
from django.dispatch import receiver
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily

from storage_backends import signals
from storage_backends.breaker import CircuitBreaker
from storage_backends.registry import PROVIDER_NAMES
from videos import job_queue
from videos.housekeeping import last_sweeps
from videos.models import MoveStatus, PendingDeletion, Processing, Video

# Read by prometheus-client when it is first imported: the same test here.
MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
BREAKER_STATES = ("closed", "open", "half_open")
FAILED = "none"  # the provider label of an upload that no provider stored
# Seconds: from a cached url() to a 2 GB upload.
CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

PROCESS_REGISTRY = CollectorRegistry()

UPLOADS = Counter(
    "stremora_uploads",
    "Files stored, by the provider that took them (none: every provider failed), outcome and way in.",
    ["provider", "outcome", "via"],
    registry=PROCESS_REGISTRY,
)
FALLBACKS = Counter(
    "stremora_fallbacks",
    "Providers a stored file passed over, by that provider, the provider that took it, and why.",
    ["from_provider", "to_provider", "kind"],
    registry=PROCESS_REGISTRY,
)
# Labelled, as every metric here: a worker writes a metric's file to the multiprocess
# directory when a value is first counted, not when it starts.
BUSY_REFUSALS = Counter(
    "stremora_provider_slots_refused",
    "Requests refused with 503 because every PROVIDER_WAIT_SLOTS slot of their machine was held, by action.",
    ["action"],
    registry=PROCESS_REGISTRY,
)
PROVIDER_CALLS = Histogram(
    "stremora_provider_call_seconds",
    "Time of one call to a provider, by provider and operation.",
    ["provider", "operation"],
    buckets=CALL_BUCKETS,
    registry=PROCESS_REGISTRY,
)


@receiver(signals.file_stored)
def count_stored(sender, provider, failures, via, **details):
    UPLOADS.labels(provider=provider, outcome="stored", via=via).inc()
    for failure in failures:
        FALLBACKS.labels(from_provider=failure.provider, to_provider=provider, kind=failure.kind).inc()


@receiver(signals.store_failed)
def count_failed(sender, via, **details):
    UPLOADS.labels(provider=FAILED, outcome="failed", via=via).inc()


@receiver(signals.provider_called)
def time_call(sender, provider, operation, seconds, **details):
    PROVIDER_CALLS.labels(provider=provider, operation=operation).observe(seconds)


class StorageStateCollector:
    """What the storage holds now: breakers, videos and bytes, pending deletions, the
    last sweeps, and where the background jobs stand. A cache read per provider, five
    small queries and, with a job queue, one question to its broker per scrape.

    The jobs are counted from the rows they write (``Video.processing``,
    ``Video.move_status``), not in the worker processes: workers may run on other
    machines, whose counters no scrape of this one would add up."""

    def describe(self):
        return [family for _, family in self._families()]

    def collect(self):
        families = dict(self._families())
        breaker = families["stremora_breaker_state"]
        for provider in settings.STORAGE_PROVIDERS:
            current = CircuitBreaker(provider).state()
            for state in BREAKER_STATES:
                breaker.add_metric([provider, state], 1 if state == current else 0)

        held = {
            row["storage_provider"]: row
            for row in Video.objects.order_by().values("storage_provider").annotate(
                videos=Count("pk"), size=Sum("size_bytes")
            )
        }
        pending = dict(PendingDeletion.objects.order_by().values_list("provider").annotate(Count("pk")))
        for provider in PROVIDER_NAMES:
            families["stremora_videos"].add_metric([provider], held.get(provider, {}).get("videos", 0))
            families["stremora_stored_bytes"].add_metric([provider], held.get(provider, {}).get("size") or 0)
            families["stremora_pending_deletions"].add_metric([provider], pending.get(provider, 0))

        processing = dict(Video.objects.order_by().values_list("processing").annotate(Count("pk")))
        for state in Processing.values:
            families["stremora_video_processing"].add_metric([state], processing.get(state, 0))
        moves = dict(Video.objects.order_by().values_list("move_status").annotate(Count("pk")))
        for status in MoveStatus.values:
            families["stremora_video_moves"].add_metric([status], moves.get(status, 0))
        if job_queue.has_workers():
            waiting = job_queue.waiting()
            if waiting is not None:
                families["stremora_jobs_waiting"].add_metric([], waiting)

        for provider, (sweep, *_) in last_sweeps().items():
            families["stremora_orphans_found"].add_metric([provider], sweep.found)
            families["stremora_orphan_sweep_timestamp_seconds"].add_metric([provider], sweep.finished_at.timestamp())
        return list(families.values())

    @staticmethod
    def _families():
        for name, documentation, labels in (
            ("stremora_breaker_state", "The provider's circuit breaker: 1 for its current state.", ["provider", "state"]),
            ("stremora_videos", "Videos whose file the provider holds.", ["provider"]),
            ("stremora_stored_bytes", "Bytes of the video files the provider holds.", ["provider"]),
            ("stremora_pending_deletions", "Deletions that failed and wait for retry_deletions.", ["provider"]),
            ("stremora_orphans_found", "Orphans the last cleanup_orphans run found on the provider.", ["provider"]),
            ("stremora_orphan_sweep_timestamp_seconds", "When cleanup_orphans last swept the provider.", ["provider"]),
            ("stremora_video_processing", "Videos by where their duration and poster stand (process_upload).",
             ["state"]),
            ("stremora_video_moves", "Videos by where the last move asked for them stands (move_video).", ["status"]),
            ("stremora_jobs_waiting", "Jobs waiting in the job queue for a worker (with CELERY_BROKER_URL).", []),
        ):
            yield name, GaugeMetricFamily(name, documentation, labels=labels)


PROCESS_REGISTRY.register(StorageStateCollector())


def exposition():
    """Every metric in Prometheus' text format, the workers' counts added up."""
    if not MULTIPROCESS:
        return generate_latest(PROCESS_REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(StorageStateCollector())
    return generate_latest(registry)
