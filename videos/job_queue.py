"""Asking for a background job (``videos.jobs``), with or without a job queue.

With ``CELERY_BROKER_URL`` set, a job is sent to Redis and a worker runs it; unset,
Celery runs it inline (``CELERY_TASK_ALWAYS_EAGER``), in the process that asks. Either
way a job asked for inside a transaction is sent once that transaction commits, so a
worker never looks for a row that is not there yet.

A broker that does not answer loses no work silently: the send is logged as an error
and the caller's ``on_unsent(reason)`` records it on the row the job was for (a move
is marked failed with the reason; a pending upload stays pending for the periodic
``process_pending_uploads``; a background completion is released, to be asked again).
"""

import logging
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from kombu.exceptions import OperationalError

from storage_backends.chain import describe_failure

logger = logging.getLogger(__name__)


def has_workers() -> bool:
    """Whether jobs go to worker processes (a broker is configured) rather than inline."""
    return not settings.CELERY_TASK_ALWAYS_EAGER


def send(job_name, *args, on_unsent=None) -> bool:
    """Send the job ``videos.jobs.<job_name>(*args)`` now; whether it was sent."""
    from videos import jobs  # the jobs call the services, which ask for jobs

    try:
        getattr(jobs, job_name).apply_async(args)
    except OperationalError as exc:
        reason = f"the job queue did not answer ({_without_broker_password(describe_failure(exc))})"
        logger.error("Could not queue the job %s%r: %s", job_name, args, reason)
        if on_unsent is not None:
            on_unsent(reason)
        return False
    return True


def waiting():
    """How many jobs wait in the queue for a worker; None when the broker does not answer."""
    from stremora.celery import app

    try:
        with app.connection_for_read() as connection:
            queue = connection.default_channel.queue_declare(app.conf.task_default_queue, passive=True)
    except Exception as exc:  # kombu and redis-py raise their own kinds
        logger.warning("Could not count the waiting jobs: %s", _without_broker_password(describe_failure(exc)))
        return None
    return queue.message_count


def send_after_commit(job_name, *args, on_unsent=None) -> None:
    """``send`` once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: send(job_name, *args, on_unsent=on_unsent))


def _without_broker_password(message):
    password = urlsplit(settings.CELERY_BROKER_URL or "").password
    return message.replace(password, "***") if password else message
