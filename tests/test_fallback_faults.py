"""The fault matrix: Cloudinary failing every way it can, through the chain and the model.

Cloudinary is the test server on loopback, S3 is moto in this process; uploads go
through ``Video`` so the recorded provider is checked along with where the bytes are.
"""

import io
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import EndpointConnectionError
from django.core.files.base import ContentFile

from storage_backends import providers
from storage_backends.breaker import Admission, CircuitBreaker
from storage_backends.chain import FallbackStorage
from storage_backends.errors import StorageUnavailable
from tests.cloudinary_server import FAULTS
from tests.factories import sha256, video_upload
from tests.fault_proxy import FaultProxy
from tests.timing import attempt_bound, save_through_a_fault
from videos.models import Video

BUCKET = "stremora-test"
MIB = 1024 * 1024


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
    assert chain_settings.STORAGE_TIMEOUT <= elapsed < attempt_bound(chain_settings.STORAGE_TIMEOUT)


@pytest.fixture
def cloudinary_proxy(cloudinary_server, settings):
    """Cloudinary's test server behind the fault proxy, for faults of the network itself."""
    with FaultProxy("127.0.0.1", cloudinary_server.port) as proxy:
        settings.CLOUDINARY_UPLOAD_PREFIX = proxy.url
        yield proxy


# fault: (proxy mode, its bytes=, size of the file); the SDK sends files of up to one
# chunk (here 6 MiB) in one request, larger ones in chunks.
NETWORK_FAULTS = {
    "refused": ("refuse", None, 5000),
    "connect hang": ("unreachable", None, 5000),
    "hang before answer": ("hang", None, 5000),
    "hang mid-body": ("stall_after", 256 * 1024, 5 * MIB),
    "hang mid-multipart": ("stall_after", 8 * MIB, 14 * MIB),
    "reset": ("reset", None, 5000),
}


@pytest.mark.parametrize("fault", NETWORK_FAULTS)
def test_a_cloudinary_attempt_costs_one_timeout_whatever_the_network_does(
    fault, settings, cloudinary_server, cloudinary_proxy, media_root
):
    settings.STORAGE_PROVIDERS = ["cloudinary", "local"]
    mode, mode_bytes, size = NETWORK_FAULTS[fault]
    providers.get_storage("cloudinary").chunk_size = 6 * MIB  # three chunks for the multipart case
    content = os.urandom(size)

    save_through_a_fault(cloudinary_proxy, mode, mode_bytes, content, media_root, settings.STORAGE_TIMEOUT)

    cloudinary_proxy.set_mode("pass")
    assert cloudinary_server.resources() == {}


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


@pytest.fixture
def cloudinary_then_local(settings, cloudinary_server):
    settings.STORAGE_PROVIDERS = ["cloudinary", "local"]
    settings.STORAGE_BREAKER_FAILURES = 2
    settings.STORAGE_BREAKER_COOLDOWN = 1
    return settings


def trip_cloudinary(cloudinary_server):
    """Two failed uploads open Cloudinary's breaker; returns the upload requests it saw."""
    cloudinary_server.fail("http_500", actions=["upload"])
    for _ in range(2):
        FallbackStorage().save("videos/clip.mp4", ContentFile(b"tripping"))
    cloudinary_server.heal()
    assert CircuitBreaker("cloudinary").is_open()
    return cloudinary_server.requests["upload"]


def save_at_once(count):
    """``count`` saves through the chain in as many threads, started together: (name, seconds) each."""
    barrier = threading.Barrier(count)

    def save(number):
        barrier.wait()
        started = time.monotonic()
        name = FallbackStorage().save(f"videos/clip{number}.mp4", ContentFile(f"upload {number}".encode()))
        return name, time.monotonic() - started

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(save, range(count)))


def test_after_the_cooldown_one_trial_meets_a_still_dead_cloudinary_and_the_rest_skip_it(
    cloudinary_then_local, cloudinary_server, caplog
):
    requests_before = trip_cloudinary(cloudinary_server)
    cloudinary_server.fail("hang", actions=["upload"])
    time.sleep(1.1)

    with caplog.at_level(logging.INFO, logger="storage_backends"):
        results = save_at_once(10)

    assert cloudinary_server.requests["upload"] - requests_before == 1
    assert all(name.startswith("local:") for name, _ in results)
    durations = sorted(seconds for _, seconds in results)
    timeout = cloudinary_then_local.STORAGE_TIMEOUT
    assert durations[-1] >= timeout  # the trial waited for its answer
    assert durations[-2] < timeout / 2  # nobody else did
    assert CircuitBreaker("cloudinary").is_open()  # the trial's failure opened it again
    messages = [record.getMessage() for record in caplog.records]
    assert messages.count("Trying cloudinary again after its cool-down: one upload at a time until it answers") == 1
    assert any(
        "cloudinary: skipped while another upload tries it after its cool-down (circuit half-open)" in message
        for message in messages
    )


def test_the_trials_success_closes_the_breaker_for_every_upload(cloudinary_then_local, cloudinary_server, caplog):
    requests_before = trip_cloudinary(cloudinary_server)
    time.sleep(1.1)

    with caplog.at_level(logging.INFO, logger="storage_backends"):
        trial = FallbackStorage().save("videos/trial.mp4", ContentFile(b"trial"))
    results = save_at_once(5)

    assert trial.startswith("cloudinary:")
    assert all(name.startswith("cloudinary:") for name, _ in results)
    assert cloudinary_server.requests["upload"] - requests_before == 6
    assert "Storage provider cloudinary took its trial upload: circuit closed" in [
        record.getMessage() for record in caplog.records
    ]


def test_files_cloudinary_refuses_move_on_without_tripping_its_breaker(cloudinary_then_local, cloudinary_server, caplog):
    cloudinary_server.max_file_size = 100

    with caplog.at_level(logging.WARNING, logger="storage_backends"):
        names = [FallbackStorage().save("videos/big.mp4", ContentFile(b"b" * 200)) for _ in range(3)]

    assert all(name.startswith("local:") for name in names)
    assert cloudinary_server.requests["upload"] == 3  # never skipped
    assert CircuitBreaker("cloudinary").admit() is Admission.CLOSED
    warning = caplog.records[0].getMessage()
    assert warning.startswith("Storage provider cloudinary failed to store videos/big_")
    assert warning.endswith(
        ", trying the next one: BadRequest: File size too large. Got 200. Maximum is 100."
        " (about the file: not counted against the provider)"
    )
    assert FallbackStorage().save("videos/small.mp4", ContentFile(b"s" * 50)).startswith("cloudinary:")


@pytest.mark.parametrize("fault", ["http_500", "hang"])
def test_faults_of_cloudinary_itself_still_trip_its_breaker(fault, cloudinary_then_local, cloudinary_server):
    cloudinary_server.fail(fault, actions=["upload"])

    names = [FallbackStorage().save("videos/clip.mp4", ContentFile(b"c" * 50)) for _ in range(3)]

    assert all(name.startswith("local:") for name in names)
    assert cloudinary_server.requests["upload"] == 2
    assert CircuitBreaker("cloudinary").is_open()


def test_a_taken_name_moves_on_without_tripping_the_breaker(cloudinary_then_local, cloudinary_server, monkeypatch, caplog):
    from storage_backends import chain, cloudinary

    # Every fresh name the storages make comes out as the one already taken on Cloudinary.
    monkeypatch.setattr(chain, "unique_name", lambda name, max_length=None: name)
    monkeypatch.setattr(cloudinary, "unique_name", lambda name, max_length=None: name)
    cloudinary_server.put("stremora/videos/taken", b"someone else's", resource_type="video", file_format="mp4")

    with caplog.at_level(logging.WARNING, logger="storage_backends"):
        names = [FallbackStorage().save("videos/taken.mp4", ContentFile(b"mine")) for _ in range(3)]

    assert all(name.startswith("local:") for name in names)
    assert cloudinary_server.content("stremora/videos/taken") == b"someone else's"
    assert CircuitBreaker("cloudinary").admit() is Admission.CLOSED
    assert "FileExistsError: Cloudinary already holds a resource for videos/taken.mp4 (about the file" in (
        caplog.records[0].getMessage()
    )


class Unrewindable(ContentFile):
    def seek(self, *args):
        raise io.UnsupportedOperation("seek")


def test_content_that_cannot_be_rewound_trips_no_breaker(cloudinary_then_local, cloudinary_server):
    cloudinary_then_local.STORAGE_BREAKER_FAILURES = 1

    with pytest.raises(StorageUnavailable) as excinfo:
        FallbackStorage().save("videos/clip.mp4", Unrewindable(b"stream"))

    assert [failure.provider for failure in excinfo.value.failures] == ["cloudinary", "local"]
    assert cloudinary_server.requests["upload"] == 0
    assert CircuitBreaker("cloudinary").admit() is Admission.CLOSED
    assert CircuitBreaker("local").admit() is Admission.CLOSED


def test_a_trial_refused_for_its_file_hands_the_trial_to_the_next_upload(cloudinary_then_local, cloudinary_server):
    trip_cloudinary(cloudinary_server)
    cloudinary_server.max_file_size = 100
    time.sleep(1.1)

    refused = FallbackStorage().save("videos/big.mp4", ContentFile(b"b" * 200))
    taken = FallbackStorage().save("videos/small.mp4", ContentFile(b"s" * 50))

    assert refused.startswith("local:")
    assert taken.startswith("cloudinary:")
    assert CircuitBreaker("cloudinary").admit() is Admission.CLOSED
