"""Amazon S3 (or any S3-compatible service) as a Django Storage, on django-storages.

A thin layer over ``storages.backends.s3.S3Storage``: objects stay private (no ACL;
playback URLs are presigned), uploads stream through boto3's managed multipart
transfer, and names are made unique without asking S3 whether they are free.

``STORAGE_TIMEOUT`` bounds a save as a whole, retries included (see
``storage_backends.s3_attempts``). boto3's managed transfer aborts its multipart
upload when a part fails; when S3 cannot be reached for that, the abort is tried
again in the background until S3 answers (a bucket lifecycle rule covers the rest,
see docs/). Clients upload large files straight to S3 through ``direct_uploads``
(``storage_backends.s3_direct``).
"""

from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import NoCredentialsError
from django.utils.deconstruct import deconstructible
from storages.backends.s3 import S3Storage as DjangoStoragesS3Storage
from storages.utils import clean_name

from storage_backends.inventory import StoredFile
from storage_backends.names import UniqueNamesMixin
from storage_backends.registry import ProviderSpec
from storage_backends.s3_attempts import bound_by_save_attempts, leftover_uploads, save_attempt
from storage_backends.s3_direct import S3DirectUploads

# Reading a stored object (open()) spills to a temporary file past this size, instead
# of holding the whole object in memory (django-storages' default).
SPOOL_MAX_MEMORY = 8 * 1024 * 1024
# An upload holds at most this many 8 MiB parts in memory (boto3's default is 10): the
# bound on what saving any file costs in memory, whatever its size.
UPLOAD_PARTS_IN_MEMORY = 5


def bounded_transfer_config():
    config = TransferConfig(max_concurrency=UPLOAD_PARTS_IN_MEMORY)
    config.max_in_memory_upload_chunks = UPLOAD_PARTS_IN_MEMORY
    return config


class NoCredentialsFound(OSError):
    """boto3 found no credentials: no keys in the settings, and none in its default chain."""


@deconstructible(path="storage_backends.s3.S3Storage")
class S3Storage(UniqueNamesMixin, DjangoStoragesS3Storage):
    provider = "s3"

    def __init__(
        self,
        access_key=None,
        secret_key=None,
        bucket_name=None,
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
        self.direct_uploads = S3DirectUploads(self)

    def __repr__(self):
        return f"<S3Storage bucket={self.bucket_name}>"

    @property
    def connection(self):
        connection = getattr(self._connections, "connection", None)
        if connection is None:  # a new client, one per thread
            connection = super().connection
            bound_by_save_attempts(connection.meta.client)
        return connection

    def warm_up(self):
        """Build this thread's client now (its service model costs about half a second of
        CPU), not in the first request that needs it; the direct uploads share it."""
        self.direct_uploads._client

    def _save(self, name, content):
        """Store ``content`` within ``timeout`` seconds, retries included, or fail."""
        key = self._normalize_name(clean_name(name))
        client = self.bucket.meta.client  # built (service model loaded) before the clock starts
        with save_attempt(self.bucket_name, key, self.timeout) as attempt:
            try:
                return super()._save(name, content)
            except BaseException:
                if attempt.multipart_upload_id is not None:  # the transfer's own abort failed
                    leftover_uploads.abort_later(
                        client, self.bucket_name, key, attempt.multipart_upload_id, self.timeout
                    )
                raise

    def iter_files(self):
        prefix = f"{self.location}/" if self.location else ""
        client = self.connection.meta.client
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket_name, Prefix=prefix):
            for item in page.get("Contents", []):
                yield StoredFile(key=item["Key"][len(prefix) :], size=item["Size"], modified=item["LastModified"])

    def check(self):
        """One HeadBucket: the endpoint answers, the credentials work, the bucket exists."""
        try:
            self.connection.meta.client.head_bucket(Bucket=self.bucket_name)
        except NoCredentialsError:
            raise NoCredentialsFound(
                "No AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "or give the server an IAM role (instance profile, ECS task role, EKS service "
                "account) or an AWS_PROFILE"
            ) from None

    def resolved_secrets(self):
        """The secret key and session token boto3 signs with (from the keys or its
        default chain), read without refreshing them; empty before any request."""
        connection = getattr(self._connections, "connection", None)
        signer = getattr(connection.meta.client, "_request_signer", None) if connection else None
        credentials = getattr(signer, "_credentials", None)
        if credentials is None:
            return []
        # RefreshableCredentials would refresh (a network call) through the public names.
        return [
            getattr(credentials, "_secret_key", None) or getattr(credentials, "secret_key", None),
            getattr(credentials, "_token", None) or getattr(credentials, "token", None),
        ]

    def md5(self, name):
        """The object's MD5 from its ETag; None for a multipart upload, whose ETag is not one."""
        etag = self.connection.meta.client.head_object(Bucket=self.bucket_name, Key=self._normalize_name(clean_name(name)))["ETag"]
        etag = etag.strip('"')
        return None if "-" in etag else etag


def _from_settings():
    from django.conf import settings

    return S3Storage(
        access_key=settings.AWS_ACCESS_KEY_ID,
        secret_key=settings.AWS_SECRET_ACCESS_KEY,
        bucket_name=settings.AWS_S3_BUCKET_NAME,
        region_name=settings.AWS_REGION,
        endpoint_url=settings.AWS_S3_ENDPOINT_URL,
        url_expiry=settings.AWS_S3_URL_EXPIRY,
        timeout=settings.STORAGE_TIMEOUT,
    )


PROVIDER = ProviderSpec(
    name="s3",
    label="Amazon S3",
    build=_from_settings,
    # The keys are optional: without them boto3's default chain (an IAM role, AWS_PROFILE) signs.
    required_settings={"AWS_S3_BUCKET_NAME": ("AWS_S3_BUCKET_NAME",)},
    paired_settings=("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
    resolved_secrets=S3Storage.resolved_secrets,
    built_from=frozenset(
        {
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_S3_BUCKET_NAME",
            "AWS_REGION",
            "AWS_S3_ENDPOINT_URL",
            "AWS_S3_URL_EXPIRY",
            "STORAGE_TIMEOUT",
        }
    ),
    secret_settings=("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
    max_mb_setting="S3_MAX_MB",
)
