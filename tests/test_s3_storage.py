"""The S3 provider against moto's in-process S3."""

from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from django.core.files.base import ContentFile
from moto import mock_aws

from storage_backends import providers
from storage_backends.s3 import S3Storage

BUCKET = "stremora-test"


@pytest.fixture
def s3_client():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture
def storage(s3_client):
    return S3Storage(access_key="testing", secret_key="testing", bucket_name=BUCKET, url_expiry=600, timeout=5)


def test_save_stores_a_private_object_under_the_project_prefix(storage, s3_client):
    name = storage.save("videos/clip.mp4", ContentFile(b"video bytes"))

    assert name.startswith("videos/clip_") and name.endswith(".mp4")
    key = f"stremora/{name}"
    assert s3_client.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"video bytes"
    grants = s3_client.get_object_acl(Bucket=BUCKET, Key=key)["Grants"]
    assert [grant["Permission"] for grant in grants] == ["FULL_CONTROL"]
    assert all(grant["Grantee"]["Type"] == "CanonicalUser" for grant in grants)


def test_the_same_name_twice_never_overwrites(storage):
    first = storage.save("videos/clip.mp4", ContentFile(b"first"))
    second = storage.save("videos/clip.mp4", ContentFile(b"second"))

    assert first != second
    assert storage.open(first).read() == b"first"
    assert storage.open(second).read() == b"second"


def test_open_size_exists_delete(storage):
    name = storage.save("videos/clip.mp4", ContentFile(b"x" * 1234))

    assert storage.exists(name)
    assert storage.size(name) == 1234
    with storage.open(name) as stored:
        assert stored.read() == b"x" * 1234
    storage.delete(name)
    assert not storage.exists(name)
    storage.delete(name)  # deleting what is gone is not an error


def test_url_is_presigned_with_the_configured_expiry(storage):
    name = storage.save("videos/clip.mp4", ContentFile(b"x"))

    url = urlsplit(storage.url(name))
    query = parse_qs(url.query)

    assert url.path.endswith(f"/stremora/{name}")
    assert query["X-Amz-Expires"] == ["600"]
    assert "X-Amz-Signature" in query


def test_url_needs_no_network():
    # Nothing listens on this endpoint: presigning is local computation.
    storage = S3Storage(
        access_key="testing",
        secret_key="testing",
        bucket_name=BUCKET,
        endpoint_url="http://127.0.0.1:9",
        timeout=1,
    )

    url = storage.url("videos/clip_k2P9xQa.mp4")

    assert url.startswith(f"http://127.0.0.1:9/{BUCKET}/stremora/videos/clip_k2P9xQa.mp4?")


def test_large_files_go_up_in_parts_and_a_failed_part_leaves_nothing(storage, s3_client):
    size = 20 * 1024 * 1024  # above boto3's 8 MiB multipart threshold
    parts_sent = []

    def fail_second_part(params, **kwargs):
        parts_sent.append(params["PartNumber"])
        if params["PartNumber"] == 2:
            raise ConnectionError("link dropped")

    events = storage.connection.meta.client.meta.events
    events.register("before-parameter-build.s3.UploadPart", fail_second_part)

    with pytest.raises(ConnectionError):
        storage.save("videos/big.mp4", ContentFile(b"\0" * size))

    assert 2 in parts_sent
    assert s3_client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    assert s3_client.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0

    events.unregister("before-parameter-build.s3.UploadPart", fail_second_part)
    name = storage.save("videos/big.mp4", ContentFile(b"\1" * size))
    assert storage.size(name) == size


def test_registry_builds_it_from_settings_with_bounded_calls(settings):
    settings.AWS_ACCESS_KEY_ID = "AKIAEXAMPLE"
    settings.AWS_SECRET_ACCESS_KEY = "secret"
    settings.AWS_S3_BUCKET_NAME = "videos"
    settings.AWS_S3_ENDPOINT_URL = "http://127.0.0.1:9000"
    settings.AWS_REGION = "eu-west-1"
    settings.AWS_S3_URL_EXPIRY = 120
    settings.STORAGE_TIMEOUT = 4.5

    storage = providers.get_storage("s3")

    assert storage is providers.get_storage("s3")  # built once, reused
    assert (storage.bucket_name, storage.endpoint_url, storage.region_name) == (
        "videos",
        "http://127.0.0.1:9000",
        "eu-west-1",
    )
    assert storage.querystring_expire == 120
    assert storage.default_acl is None
    assert storage.client_config.connect_timeout == 4.5
    assert storage.client_config.read_timeout == 4.5
    assert storage.connection.meta.client.meta.config.retries["total_max_attempts"] == 2
    assert storage.transfer_config.max_in_memory_upload_chunks == 5
    assert storage.connection is storage.connection
