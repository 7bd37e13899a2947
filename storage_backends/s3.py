"""Amazon S3 (or any S3-compatible service) as a Django Storage, on django-storages.

A thin layer over ``storages.backends.s3.S3Storage``: objects stay private (no ACL;
playback URLs are presigned), uploads stream through boto3's managed multipart
transfer, and names are made unique without asking S3 whether they are free.

``STORAGE_TIMEOUT`` bounds a save as a whole, retries included (``SaveAttempt``):
every request of the save gets what is left of it as its bound, a retry is sent only
while time is left, and each part that lands renews it, so a large file keeps going
while parts keep landing. boto3's managed transfer aborts its multipart upload when a
part fails; when S3 cannot be reached for that, the abort is tried again in the
background until S3 answers (a bucket lifecycle rule covers the rest, see docs/).
"""

import logging
import threading
import time

import urllib3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError
from django.utils.deconstruct import deconstructible
from storages.backends.s3 import S3Storage as DjangoStoragesS3Storage
from storages.utils import clean_name

from storage_backends.inventory import StoredFile

from storage_backends.names import UniqueNamesMixin

logger = logging.getLogger(__name__)

# Reading a stored object (open()) spills to a temporary file past this size, instead
# of holding the whole object in memory (django-storages' default).
SPOOL_MAX_MEMORY = 8 * 1024 * 1024
# An upload holds at most this many 8 MiB parts in memory (boto3's default is 10): the
# bound on what saving any file costs in memory, whatever its size.
UPLOAD_PARTS_IN_MEMORY = 5


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

    def pending(self):
        with self._lock:
            return [(bucket, key, upload_id) for _, bucket, key, upload_id, _ in self._pending]

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


def bounded_transfer_config():
    config = TransferConfig(max_concurrency=UPLOAD_PARTS_IN_MEMORY)
    config.max_in_memory_upload_chunks = UPLOAD_PARTS_IN_MEMORY
    return config


@deconstructible(path="storage_backends.s3.S3Storage")
class S3Storage(UniqueNamesMixin, DjangoStoragesS3Storage):
    provider = "s3"

    def __init__(
        self,
        access_key,
        secret_key,
        bucket_name,
        region_name="us-east-1",
        endpoint_url=None,
        url_expiry=3600,
        timeout=30.0,
        location="stremora",
        **options,
    ):
        self.timeout = timeout
        client_config = Config(
            # Requests outside a save (reads, deletions, listings); a save's requests
            # share its own bound instead (SaveAttempt).
            connect_timeout=timeout,
            read_timeout=timeout,
            # Two attempts in all (botocore's "max_attempts" counts retries): one retry
            # for a passing fault such as SlowDown, then the chain moves on. Within a
            # save, a retry is sent only while the save has time left.
            retries={"mode": "standard", "total_max_attempts": 2},
            signature_version="s3v4",
            s3={"addressing_style": "path"} if endpoint_url else {},
        )
        options.setdefault("transfer_config", bounded_transfer_config())
        super().__init__(
            access_key=access_key,
            secret_key=secret_key,
            bucket_name=bucket_name,
            region_name=region_name,
            endpoint_url=endpoint_url,
            querystring_auth=True,
            querystring_expire=url_expiry,
            default_acl=None,
            file_overwrite=True,  # names are unique already; see UniqueNamesMixin
            location=location,
            max_memory_size=SPOOL_MAX_MEMORY,
            client_config=client_config,
            **options,
        )

    def __repr__(self):
        return f"<S3Storage bucket={self.bucket_name}>"

    @property
    def connection(self):
        connection = getattr(self._connections, "connection", None)
        if connection is None:  # a new client, one per thread
            connection = super().connection
            bound_by_save_attempts(connection.meta.client)
        return connection

    def _save(self, name, content):
        """Store ``content`` within ``timeout`` seconds, retries included, or fail."""
        target = (self.bucket_name, self._normalize_name(clean_name(name)))
        attempt = SaveAttempt(self.timeout)
        with _attempts_lock:
            _attempts[target] = attempt
        try:
            return super()._save(name, content)
        except BaseException:
            if attempt.multipart_upload_id is not None:  # the transfer's own abort failed
                leftover_uploads.abort_later(
                    self.bucket.meta.client, *target, attempt.multipart_upload_id, interval=self.timeout
                )
            raise
        finally:
            with _attempts_lock:
                if _attempts.get(target) is attempt:
                    del _attempts[target]

    def iter_files(self):
        prefix = f"{self.location}/" if self.location else ""
        client = self.connection.meta.client
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket_name, Prefix=prefix):
            for item in page.get("Contents", []):
                yield StoredFile(key=item["Key"][len(prefix) :], size=item["Size"], modified=item["LastModified"])

    def check(self):
        """One HeadBucket: the endpoint answers, the credentials work, the bucket exists."""
        self.connection.meta.client.head_bucket(Bucket=self.bucket_name)

    def md5(self, name):
        """The object's MD5 from its ETag; None for a multipart upload, whose ETag is not one."""
        etag = self.connection.meta.client.head_object(Bucket=self.bucket_name, Key=self._normalize_name(clean_name(name)))["ETag"]
        etag = etag.strip('"')
        return None if "-" in etag else etag
