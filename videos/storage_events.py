"""The record of the storage chain's outcomes that the admin's dashboard counts.

``record_stored`` and ``record_failed`` receive ``storage_backends.signals`` (connected
in ``VideosConfig.ready``) and write one ``StorageEvent`` each. They run inside the
upload, so they stay cheap: one insert, in a savepoint so that a failed insert cannot
spoil a transaction around the upload. Once a day each process also removes the
events older than ``StorageEvent.KEPT_FOR`` (90 days) while it records one: an index
on ``created_at`` keeps that a small delete.
"""

import logging
import threading
import time

from django.db import transaction

from storage_backends.errors import FailureKind
from videos.models import StorageEvent
from videos.services import ensure_usable_connection

logger = logging.getLogger(__name__)

PRUNE_EVERY = 24 * 60 * 60  # seconds
_pruned_at = None  # time.monotonic() of this process's last prune
_prune_lock = threading.Lock()


def first_fallen_from(failures):
    """The first provider in line that did not take the file, ignoring those not configured."""
    for failure in failures:
        if failure.kind != FailureKind.NOT_CONFIGURED:
            return failure
    return None


def record_stored(sender, *, provider, name, size=None, failures=(), via, **kwargs):
    fallen = first_fallen_from(failures)
    _record(
        outcome=StorageEvent.Outcome.STORED,
        via=via,
        provider=provider,
        fallen_from=fallen.provider if fallen else "",
        reason_kind=fallen.kind if fallen else "",
        name=name,
        size_bytes=size,
    )


def record_failed(sender, *, name, failures=(), via, **kwargs):
    fallen = first_fallen_from(failures)
    _record(
        outcome=StorageEvent.Outcome.FAILED,
        via=via,
        fallen_from=fallen.provider if fallen else "",
        reason_kind=fallen.kind if fallen else "",
        name=name,
    )


def _record(**fields):
    ensure_usable_connection()  # idle while the provider took the file: it may have been dropped
    with transaction.atomic():
        StorageEvent.objects.create(**fields)
    if _prune_due():
        with transaction.atomic():
            removed = StorageEvent.objects.prune()
        if removed:
            logger.info("Removed %d storage events older than %d days", removed, StorageEvent.KEPT_FOR.days)


def _prune_due():
    global _pruned_at
    with _prune_lock:
        now = time.monotonic()
        if _pruned_at is not None and now - _pruned_at < PRUNE_EVERY:
            return False
        _pruned_at = now
        return True


def forget_last_prune():
    """Make the next recorded event prune again (tests)."""
    global _pruned_at
    with _prune_lock:
        _pruned_at = None
