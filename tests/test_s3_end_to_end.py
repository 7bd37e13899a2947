"""S3 over real HTTP: moto's server in its own process, behind a proxy that can fail."""

import os
import time
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.awsrequest import AWSResponse
from django.core.files import File
from django.core.files.base import ContentFile

from storage_backends.chain import FallbackStorage
from storage_backends.errors import StorageUnavailable
from storage_backends.s3 import S3Storage
from tests.factories import sha256
from tests.fault_proxy import FaultProxy
from tests.timing import attempt_bound, save_through_a_fault

BUCKET = "stremora-test"
MIB = 1024 * 1024


@pytest.fixture
def s3_proxy(s3_server, settings):
    with FaultProxy("127.0.0.1", s3_server.port) as proxy:
        settings.AWS_S3_ENDPOINT_URL = proxy.url
        settings.STORAGE_TIMEOUT = 1.5
        yield proxy


@pytest.fixture
def big_file(tmp_path):
    path = tmp_path / "big.mp4"
    with open(path, "wb") as handle:
        for block in range(20):
            handle.write(bytes([block]) * MIB)
    with open(path, "rb") as handle:
        yield File(handle, name="big.mp4")


def test_a_large_file_streams_to_s3_in_parts_and_plays_from_a_presigned_url(settings, s3_server, big_file):
    settings.STORAGE_PROVIDERS = ["s3"]
    settings.AWS_S3_URL_EXPIRY = 900

    name = FallbackStorage().save("videos/big.mp4", big_file)

    key = "stremora/" + name.removeprefix("s3:")
    assert s3_server.keys(BUCKET) == [key]
    head = s3_server.client().head_object(Bucket=BUCKET, Key=key)
    assert head["ContentLength"] == 20 * MIB
    stored = s3_server.client().get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert sha256(stored) == sha256(Path(big_file.file.name).read_bytes())
    assert head["ETag"].endswith('-3"')  # three parts of 8 MiB or less: a multipart upload
    url = FallbackStorage().url(name)
    assert url.startswith(f"{s3_server.url}/{BUCKET}/{key}?")
    assert parse_qs(urlsplit(url).query)["X-Amz-Expires"] == ["900"]
    request = urllib.request.Request(url, headers={"Range": f"bytes={19 * MIB}-{19 * MIB + 3}"})
    with urllib.request.urlopen(request) as response:
        assert response.read() == bytes([19]) * 4


def test_an_upload_cut_midway_leaves_no_parts_and_goes_to_the_next_provider(
    settings, s3_server, s3_proxy, big_file, media_root
):
    settings.STORAGE_PROVIDERS = ["s3", "local"]
    s3_proxy.set_mode("cut_after", bytes=6 * MIB)

    name = FallbackStorage().save("videos/big.mp4", big_file)

    assert name.startswith("local:")
    stored = (media_root / name.removeprefix("local:")).read_bytes()
    assert sha256(stored) == sha256(Path(big_file.file.name).read_bytes())
    assert s3_server.keys(BUCKET) == []
    assert s3_server.multipart_uploads(BUCKET) == []


def wait_until(condition, seconds):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)
    return condition()


# fault: (proxy mode, its bytes=, size of the file); files over 8 MiB go up in parts.
NETWORK_FAULTS = {
    "refused": ("refuse", None, 4096),
    "connect hang": ("unreachable", None, 4096),
    "hang before answer": ("hang", None, 4096),
    "hang mid-body": ("stall_after", 256 * 1024, 7 * MIB),
    "hang mid-multipart": ("stall_after", 12 * MIB, 20 * MIB),
    "reset": ("reset", None, 4096),
}


@pytest.mark.parametrize("fault", NETWORK_FAULTS)
def test_s3_faults_fall_through_to_local_disk(settings, s3_server, s3_proxy, media_root, fault):
    settings.STORAGE_PROVIDERS = ["s3", "local"]
    mode, mode_bytes, size = NETWORK_FAULTS[fault]
    content = os.urandom(size)

    save_through_a_fault(s3_proxy, mode, mode_bytes, content, media_root, settings.STORAGE_TIMEOUT)

    s3_proxy.set_mode("pass")
    # A multipart upload its save could not abort is aborted once S3 answers again.
    assert wait_until(lambda: s3_server.multipart_uploads(BUCKET) == [], 4 * settings.STORAGE_TIMEOUT)
    assert s3_server.keys(BUCKET) == []


def test_cloudinary_and_s3_down_is_one_error_and_nothing_anywhere(
    settings, cloudinary_server, s3_server, s3_proxy, media_root
):
    settings.STORAGE_PROVIDERS = ["cloudinary", "s3"]
    cloudinary_server.fail("http_500")
    s3_proxy.set_mode("refuse")

    with pytest.raises(StorageUnavailable) as excinfo:
        FallbackStorage().save("videos/clip.mp4", ContentFile(b"clip"))

    assert [failure.provider for failure in excinfo.value.failures] == ["cloudinary", "s3"]
    assert "GeneralError" in str(excinfo.value) and "EndpointConnectionError" in str(excinfo.value)
    s3_proxy.set_mode("pass")
    assert s3_server.keys(BUCKET) == []
    assert cloudinary_server.resources() == {}
    assert not media_root.exists() or not any(media_root.rglob("*.mp4"))


def test_s3_comes_back_when_the_network_does(settings, s3_server, s3_proxy):
    settings.STORAGE_PROVIDERS = ["s3"]
    s3_proxy.set_mode("refuse")
    with pytest.raises(StorageUnavailable):
        FallbackStorage().save("videos/clip.mp4", ContentFile(b"clip"))

    s3_proxy.set_mode("pass")
    name = FallbackStorage().save("videos/clip.mp4", ContentFile(b"clip"))

    assert s3_server.keys(BUCKET) == ["stremora/" + name.removeprefix("s3:")]


def server_storage(s3_server, timeout, **options):
    return S3Storage(
        access_key="testing",
        secret_key="testing",
        bucket_name=BUCKET,
        endpoint_url=s3_server.url,
        timeout=timeout,
        **options,
    )


def test_a_large_file_slower_than_the_timeout_keeps_going_while_parts_land(s3_server):
    # One part at a time, each on a line slow enough that the whole save takes about
    # twice the timeout: every part that lands renews the save's time.
    part_size = 5 * MIB
    storage = server_storage(
        s3_server,
        timeout=2.0,
        transfer_config=TransferConfig(
            multipart_threshold=part_size, multipart_chunksize=part_size, max_concurrency=1
        ),
    )
    storage.connection.meta.client.meta.events.register(
        "before-send.s3.UploadPart", lambda **kwargs: time.sleep(1.2)
    )
    content = os.urandom(3 * part_size)

    started = time.monotonic()
    name = storage.save("videos/big.mp4", ContentFile(content))

    assert time.monotonic() - started > storage.timeout
    stored = s3_server.client().get_object(Bucket=BUCKET, Key=f"stremora/{name}")["Body"].read()
    assert sha256(stored) == sha256(content)


class _Body:
    def __init__(self, data):
        self.data = data

    def stream(self, *args, **kwargs):
        yield self.data


def test_no_retry_is_sent_once_the_save_has_too_little_time_left(s3_server):
    storage = server_storage(s3_server, timeout=2.0)
    sent = []

    def slow_down_late(request, **kwargs):
        sent.append(request.url)
        time.sleep(1.5)  # S3 throttles, and says so late: 0.5 s of the save are left
        body = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
        return AWSResponse(request.url, 503, {}, _Body(body))

    storage.connection.meta.client.meta.events.register("before-send.s3.PutObject", slow_down_late)

    started = time.monotonic()
    with pytest.raises(Exception, match="SlowDown"):
        storage.save("videos/clip.mp4", ContentFile(b"clip"))

    assert len(sent) == 1  # botocore's retry (after up to a second's pause) was not sent
    assert time.monotonic() - started < attempt_bound(storage.timeout)
