"""S3 over real HTTP: moto's server in its own process, behind a proxy that can fail."""

import time
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.files import File
from django.core.files.base import ContentFile

from storage_backends.chain import FallbackStorage
from storage_backends.errors import StorageUnavailable
from tests.factories import sha256
from tests.fault_proxy import FaultProxy

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


@pytest.mark.parametrize("mode", ["refuse", "reset", "hang"])
def test_s3_faults_fall_through_to_local_disk(settings, s3_server, s3_proxy, media_root, mode):
    settings.STORAGE_PROVIDERS = ["s3", "local"]
    s3_proxy.set_mode(mode)

    started = time.monotonic()
    name = FallbackStorage().save("videos/clip.mp4", ContentFile(b"clip"))
    elapsed = time.monotonic() - started

    assert name.startswith("local:")
    # Two attempts of at most one timeout each, botocore's backoff of up to 2 s
    # between them, then the chain moves on.
    assert elapsed < 2 * settings.STORAGE_TIMEOUT + 2 + 1
    s3_proxy.set_mode("pass")
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
