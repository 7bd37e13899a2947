"""A save's time on S3: ``STORAGE_TIMEOUT`` for the whole save, retries included.

botocore bounds each request, and retries it, on its own; a save is one request (a
small file) or many (a multipart upload), each possibly retried. Here a save gets a
``SaveAttempt``, found by its bucket and key from any transfer thread, and every
request of that save gets what is left of it as its bound for connecting, sending and
reading; a retry is sent only while time is left, and each part that lands renews it,
so a large file keeps going while parts keep landing.

A multipart upload that the failed save could not abort (S3 stopped answering) is
handed to ``leftover_uploads``, which tries again in the background until S3 answers.
"""

import contextlib
import logging
import threading
import time

import urllib3
from botocore.exceptions import ClientError

logger = logging.getLogger(__name__)

# Where a request's context names the save it belongs to.
ATTEMPT_CONTEXT_KEY = "stremora_save_attempt"
# A retry is sent only while this much of the save's time is left: botocore may wait up
# to a second before retrying a throttled request.
RETRY_MIN_REMAINING = 1.0
# How long multipart uploads that a failed save could not abort are tried again.
LEFTOVER_ABORT_PATIENCE = 60 * 60


class SaveAttempt:
    """The time one save may still take: ``seconds``, renewed each time a part lands."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.expires = time.monotonic() + seconds
        self.multipart_upload_id = None  # created by this save and neither completed nor aborted

    def renew(self):
        self.expires = time.monotonic() + self.seconds

    def remaining(self):
        return self.expires - time.monotonic()

    def request_timeout(self):
        """The bound of the next request: what is left, for connecting, sending and reading alike."""
        remaining = min(self.remaining(), self.seconds)
        if remaining <= 0:
            raise urllib3.exceptions.ConnectTimeoutError(f"the {self.seconds:g} s of this save are spent")
        return urllib3.Timeout(connect=remaining, read=remaining, total=remaining)


# The save in progress for each (bucket, key): transfer threads send its requests.
_attempts = {}
_attempts_lock = threading.Lock()


@contextlib.contextmanager
def save_attempt(bucket, key, seconds):
    """The attempt of one save of ``key``, known to every request about that key meanwhile."""
    attempt = SaveAttempt(seconds)
    with _attempts_lock:
        _attempts[(bucket, key)] = attempt
    try:
        yield attempt
    finally:
        with _attempts_lock:
            if _attempts.get((bucket, key)) is attempt:
                del _attempts[(bucket, key)]


def _attach_attempt(params, context, **kwargs):
    attempt = _attempts.get((params.get("Bucket"), params.get("Key")))
    if attempt is not None:
        context[ATTEMPT_CONTEXT_KEY] = attempt


def _note_multipart_upload(http_response, parsed, context, model, **kwargs):
    attempt = context.get(ATTEMPT_CONTEXT_KEY)
    if attempt is None or http_response.status_code >= 300:
        return
    if model.name == "CreateMultipartUpload":
        attempt.multipart_upload_id = parsed.get("UploadId")
    elif model.name == "UploadPart":
        attempt.renew()
    elif model.name in ("CompleteMultipartUpload", "AbortMultipartUpload"):
        attempt.multipart_upload_id = None


def _retry_only_in_time(request_dict, **kwargs):
    attempt = request_dict["context"].get(ATTEMPT_CONTEXT_KEY)
    if attempt is not None and attempt.remaining() < RETRY_MIN_REMAINING:
        return False  # vetoes botocore's own retry handler, which runs after this one
    return None


def bound_by_save_attempts(client):
    """Make every request that belongs to a save keep within that save's time."""
    events = client.meta.events
    events.register("before-parameter-build.s3", _attach_attempt)
    for operation in ("CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "AbortMultipartUpload"):
        events.register(f"after-call.s3.{operation}", _note_multipart_upload)
    events.register_first("needs-retry.s3", _retry_only_in_time)
    # botocore asks its HTTP session for each request's timeout; the client's own
    # (connect_timeout, read_timeout) stays the answer for requests outside a save.
    http_session = client._endpoint.http_session
    client_timeout = http_session._get_request_timeout

    def request_timeout(request):
        attempt = (getattr(request, "context", None) or {}).get(ATTEMPT_CONTEXT_KEY)
        return attempt.request_timeout() if attempt is not None else client_timeout(request)

    http_session._get_request_timeout = request_timeout


class LeftoverUploads:
    """Multipart uploads that failed saves could not abort, aborted once S3 answers again."""

    def __init__(self):
        self._pending = []  # (client, bucket, key, upload_id, give up at)
        self._lock = threading.Lock()
        self._thread = None

    def abort_later(self, client, bucket, key, upload_id, interval):
        logger.warning(
            "Could not abort the multipart upload of %s on S3; trying again every %g s", key, interval
        )
        with self._lock:
            self._pending.append((client, bucket, key, upload_id, time.monotonic() + LEFTOVER_ABORT_PATIENCE))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, args=(interval,), name="s3-leftover-uploads", daemon=True
                )
                self._thread.start()

    def _run(self, interval):
        while True:
            time.sleep(interval)
            with self._lock:
                pending = list(self._pending)
            for item in pending:
                if self._abort(*item):
                    with self._lock:
                        self._pending.remove(item)
            with self._lock:
                if not self._pending:
                    self._thread = None
                    return

    def _abort(self, client, bucket, key, upload_id, give_up_at):
        """True once the upload is gone (or given up on)."""
        try:
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
                return self._give_up_yet(key, give_up_at, exc)
        except Exception as exc:
            return self._give_up_yet(key, give_up_at, exc)
        logger.info("Aborted the multipart upload of %s left on S3 by a failed save", key)
        return True

    def _give_up_yet(self, key, give_up_at, exc):
        if time.monotonic() < give_up_at:
            return False
        logger.warning(
            "Gave up aborting the multipart upload of %s on S3 (%s); the bucket's lifecycle rule removes it",
            key,
            type(exc).__name__,
        )
        return True


leftover_uploads = LeftoverUploads()
