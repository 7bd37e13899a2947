"""The fault matrix: Cloudinary failing every way it can, through the chain and the model.

Cloudinary is the test server on loopback, S3 is moto in this process; uploads go
through ``Video`` so the recorded provider is checked along with where the bytes are.
"""

import logging
import time

import pytest
from botocore.exceptions import EndpointConnectionError
from django.core.files.base import ContentFile

from storage_backends import providers
from storage_backends.chain import FallbackStorage
from storage_backends.errors import StorageUnavailable
from tests.cloudinary_server import FAULTS
from tests.factories import sha256, video_upload
from videos.models import Video

BUCKET = "stremora-test"


def bucket_objects(client):
    return {
        item["Key"]: client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
        for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    }


def local_files(media_root):
    return [path for path in media_root.rglob("*") if path.is_file()]


@pytest.fixture
def chain_settings(settings, cloudinary_server, s3_inprocess):
    settings.STORAGE_PROVIDERS = ["cloudinary", "s3"]
    return settings


@pytest.fixture
def s3_down(s3_inprocess):
    def refuse(**kwargs):
        raise EndpointConnectionError(endpoint_url="https://s3.amazonaws.com")

    events = providers.get_storage("s3").connection.meta.client.meta.events
    events.register("before-send.s3", refuse)
    yield
    events.unregister("before-send.s3", refuse)


def test_a_healthy_cloudinary_takes_the_upload(chain_settings, cloudinary_server, s3_inprocess, user):
    upload = video_upload(size=5000)
    video = Video.objects.create(title="Clip", owner=user, file=upload)

    video.refresh_from_db()
    assert video.storage_provider == "cloudinary"
    public_id = "stremora/" + video.file.name.removeprefix("cloudinary:").removesuffix(".mp4")
    assert sha256(cloudinary_server.content(public_id, "video")) == sha256(upload.body)
    assert bucket_objects(s3_inprocess) == {}


@pytest.mark.parametrize("fault", FAULTS)
def test_each_cloudinary_fault_sends_the_file_to_s3(fault, chain_settings, cloudinary_server, s3_inprocess, user, caplog):
    cloudinary_server.fail(fault, actions=["upload"] if fault != "refuse" else None)
    upload = video_upload(size=5000)

    with caplog.at_level(logging.WARNING, logger="storage_backends"):
        video = Video.objects.create(title="Clip", owner=user, file=upload)

    video.refresh_from_db()
    assert video.storage_provider == "s3"
    assert video.file.name.startswith("s3:videos/")
    assert bucket_objects(s3_inprocess) == {"stremora/" + video.file.name.removeprefix("s3:"): upload.body}
    assert cloudinary_server.resources() == {}
    warnings = [
        record.getMessage()
        for record in caplog.records
        if record.levelno == logging.WARNING and record.name.startswith("storage_backends")
    ]
    assert len(warnings) == 1
    assert warnings[0].startswith("Storage provider cloudinary failed to store videos/")
    assert cloudinary_server.api_secret not in warnings[0]
    assert cloudinary_server.api_key not in warnings[0]


def test_a_hang_costs_one_timeout_not_more(chain_settings, cloudinary_server, user):
    cloudinary_server.fail("hang")

    started = time.monotonic()
    video = Video.objects.create(title="Clip", owner=user, file=video_upload())
    elapsed = time.monotonic() - started

    assert video.storage_provider == "s3"
    assert chain_settings.STORAGE_TIMEOUT <= elapsed < 3 * chain_settings.STORAGE_TIMEOUT


def test_both_down_falls_back_to_local_disk_when_it_is_in_the_chain(
    settings, cloudinary_server, s3_down, s3_inprocess, media_root, user
):
    settings.STORAGE_PROVIDERS = ["cloudinary", "s3", "local"]
    cloudinary_server.fail("http_500")

    upload = video_upload(size=777)
    video = Video.objects.create(title="Clip", owner=user, file=upload)

    video.refresh_from_db()
    assert video.storage_provider == "local"
    assert sha256((media_root / video.file.name.removeprefix("local:")).read_bytes()) == sha256(upload.body)
    assert cloudinary_server.resources() == {}


def test_both_down_without_local_is_one_clear_error_and_nothing_stored(
    chain_settings, cloudinary_server, s3_down, s3_inprocess, media_root, user
):
    cloudinary_server.fail("refuse")

    with pytest.raises(StorageUnavailable) as excinfo:
        Video.objects.create(title="Clip", owner=user, file=video_upload())

    message = str(excinfo.value)
    assert message.startswith("No storage provider could store the file (cloudinary: Error: ")
    assert "; s3: EndpointConnectionError" in message
    for secret in (cloudinary_server.api_secret, cloudinary_server.api_key, "aws-secret-for-tests", "AKIAEXAMPLE"):
        assert secret not in message
    assert Video.objects.count() == 0
    cloudinary_server.heal()
    assert cloudinary_server.resources() == {}
    assert bucket_objects(s3_inprocess) == {}
    assert local_files(media_root) == []


def test_the_breaker_trips_skips_cloudinary_and_recovers(chain_settings, cloudinary_server, s3_inprocess, user):
    chain_settings.STORAGE_BREAKER_FAILURES = 2
    chain_settings.STORAGE_BREAKER_COOLDOWN = 1
    cloudinary_server.fail("http_500", actions=["upload"])

    providers_used = [
        Video.objects.create(title=f"Clip {number}", owner=user, file=video_upload()).storage_provider
        for number in range(4)
    ]

    assert providers_used == ["s3"] * 4
    assert cloudinary_server.requests["upload"] == 2  # tripped after two, then skipped

    cloudinary_server.heal()
    assert Video.objects.create(title="Still cooling", owner=user, file=video_upload()).storage_provider == "s3"
    assert cloudinary_server.requests["upload"] == 2
    time.sleep(1.1)
    recovered = Video.objects.create(title="Back", owner=user, file=video_upload())
    assert recovered.storage_provider == "cloudinary"
    assert cloudinary_server.requests["upload"] == 3


def test_one_failure_after_the_cooldown_trips_the_breaker_again(chain_settings, cloudinary_server, user):
    chain_settings.STORAGE_BREAKER_FAILURES = 2
    chain_settings.STORAGE_BREAKER_COOLDOWN = 1
    cloudinary_server.fail("http_500", actions=["upload"])
    for _ in range(2):
        Video.objects.create(title="Clip", owner=user, file=video_upload())
    time.sleep(1.1)

    for _ in range(2):
        Video.objects.create(title="Clip", owner=user, file=video_upload())

    assert cloudinary_server.requests["upload"] == 3


def test_files_saved_on_s3_are_read_from_s3_while_cloudinary_is_down(chain_settings, cloudinary_server, user):
    cloudinary_server.fail("refuse")
    upload = video_upload(size=1234)
    video = Video.objects.create(title="Clip", owner=user, file=upload)

    video.refresh_from_db()
    assert video.file.size == 1234
    with video.file.open("rb") as stored:
        assert sha256(stored.read()) == sha256(upload.body)
    assert "X-Amz-Signature=" in video.file.url


def test_cloudinary_files_are_read_from_cloudinary(chain_settings, cloudinary_server, s3_inprocess):
    chain = FallbackStorage()
    name = chain.save("videos/clip.mp4", ContentFile(b"cloud bytes"))

    assert name.startswith("cloudinary:videos/clip_")
    assert chain.open(name).read() == b"cloud bytes"
    assert chain.size(name) == 11
    assert chain.url(name).startswith(cloudinary_server.url)
    chain.delete(name)
    assert not chain.exists(name)
