"""The background jobs, run by ``celery -A stremora worker`` (inline without a broker).

Each is a thin wrapper over what the management commands and the requests call
(``videos.services``, ``videos.upload_sessions``, the commands themselves), and each
is safe to run twice: a job is acknowledged only once it has run, so one whose worker
died runs again on another. The periodic ones are scheduled in ``CELERY_BEAT_SCHEDULE``.
"""

import io
import logging

from celery import Task, shared_task
from django.conf import settings
from django.core.management import CommandError, call_command

from storage_backends.chain import describe_failure
from storage_backends.errors import ProviderNotConfigured
from videos import job_queue, services, upload_sessions
from videos.models import MoveStatus

logger = logging.getLogger(__name__)

# Provider faults are retried this many times, after 30 s, 1 min, 2 min (at most
# RETRY_BACKOFF_MAX apart), before the job gives up and the admin shows why. Without
# jitter: Celery's would pick each wait between 0 and these, and three quick retries
# could all fall inside one short outage.
RETRIES = 3
RETRY_BACKOFF = 30
RETRY_BACKOFF_MAX = 600


class MoveGaveUp(Exception):
    """A move interrupted while the request that asked for it waits (no job queue): the
    admin's action, like the command, makes one attempt and reports."""


def _reason(exc):
    return str(exc) if isinstance(exc, (services.MoveInterrupted, MoveGaveUp)) else describe_failure(exc)


class MoveJob(Task):
    """Records on the video each retry of its move, and why it failed in the end."""

    def on_retry(self, exc, task_id, args, kwargs, einfo):
        attempt = self.request.retries + 1
        services.record_move(
            args[0], MoveStatus.QUEUED, f"Attempt {attempt} of {RETRIES + 1} failed, trying again: {_reason(exc)}"
        )

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        services.record_move(args[0], MoveStatus.FAILED, _reason(exc))


class ProcessJob(Task):
    """Records on the video why its processing failed in the end."""

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        services.record_processing_failure(args[0], _reason(exc))


@shared_task(
    base=MoveJob,
    autoretry_for=(services.MoveInterrupted,),
    max_retries=RETRIES,
    retry_backoff=RETRY_BACKOFF,
    retry_backoff_max=RETRY_BACKOFF_MAX,
    retry_jitter=False,
)
def move_video(video_id, to_provider):
    """Move a video's files to ``to_provider`` (``services.move_video``, under its row lock)."""
    try:
        services.run_move(video_id, to_provider)
    except services.MoveInterrupted as exc:
        if job_queue.has_workers():
            raise  # tried again later, with backoff
        raise MoveGaveUp(str(exc)) from exc


@shared_task(
    base=ProcessJob,
    autoretry_for=(Exception,),
    dont_autoretry_for=(ProviderNotConfigured,),
    max_retries=RETRIES,
    retry_backoff=RETRY_BACKOFF,
    retry_backoff_max=RETRY_BACKOFF_MAX,
    retry_jitter=False,
)
def process_upload(video_id):
    """Duration and poster of a newly stored file."""
    services.process_upload(video_id)


@shared_task
def complete_upload(session_id):
    """A direct upload's completion asked for with ``Prefer: respond-async``."""
    upload_sessions.complete_asked(session_id)


@shared_task
def retry_deletions():
    """The due removals of the retry queue (``manage.py retry_deletions``)."""
    removed, failing = services.retry_pending_deletions()
    if removed or failing:
        logger.info("Retried deletions: %s removed, %s failed again", removed, failing)


@shared_task
def process_pending_uploads():
    """Ask again for uploads whose processing never started (its job was not queued)."""
    asked = services.resend_pending_processing()
    if asked:
        logger.info("Asked again for the processing of %s pending video(s)", asked)


@shared_task
def sweep_expired_uploads():
    """Direct uploads past UPLOAD_SESSION_TTL: what they left is removed."""
    expired, removed, failed = upload_sessions.sweep_expired()
    if expired:
        logger.info("%s expired direct uploads: %s leftovers removed, %s not removed", expired, removed, failed)


@shared_task
def cleanup_orphans():
    """``manage.py cleanup_orphans``: a report, or deletions with STORAGE_CLEANUP_DELETE."""
    _run_command("cleanup_orphans", delete=settings.STORAGE_CLEANUP_DELETE)


@shared_task
def verify_files():
    """``manage.py check_storage --verify-files``."""
    _run_command("check_storage", verify_files=True)


def _run_command(name, **options):
    """Run a management command, its output in the log: INFO when it succeeds,
    WARNING with what it found when it exits with an error."""
    output = io.StringIO()
    try:
        call_command(name, stdout=output, stderr=output, no_color=True, **options)
    except CommandError as exc:
        logger.warning("%s found problems: %s\n%s", name, exc, output.getvalue().rstrip())
        return
    logger.info("%s:\n%s", name, output.getvalue().rstrip())
