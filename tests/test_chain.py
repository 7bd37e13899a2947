"""The fallback chain with S3 (moto in-process) and local disk."""

import logging

import pytest
from botocore.exceptions import EndpointConnectionError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from storage_backends import providers
from storage_backends.chain import FallbackStorage
from storage_backends.errors import StorageUnavailable
from tests.factories import video_upload
from videos.models import Video

BUCKET = "stremora-test"


def bucket_keys(client):
    return [item["Key"] for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])]


def local_files(media_root):
    return sorted(str(path.relative_to(media_root)) for path in media_root.rglob("*") if path.is_file())


@pytest.fixture
def s3_refuses(s3_inprocess):
    """Every S3 request fails as if the endpoint refused the connection."""
    calls = []

    def refuse(**kwargs):
        calls.append(kwargs["event_name"])
        raise EndpointConnectionError(endpoint_url="https://s3.amazonaws.com")

    events = providers.get_storage("s3").connection.meta.client.meta.events
    events.register("before-send.s3", refuse)
    yield calls
    events.unregister("before-send.s3", refuse)


def test_video_files_use_the_chain():
    assert isinstance(default_storage, FallbackStorage)
    assert Video._meta.get_field("file").storage is default_storage
    thumbnail_storage = Video._meta.get_field("thumbnail").storage
    assert isinstance(thumbnail_storage, FallbackStorage) and thumbnail_storage.legacy_resource_type == "image"


def test_first_working_provider_takes_the_file(settings, s3_inprocess, media_root):
    settings.STORAGE_PROVIDERS = ["s3", "local"]

    name = FallbackStorage().save("videos/clip.mp4", ContentFile(b"on s3"))

    assert name.startswith("s3:videos/clip_")
    assert bucket_keys(s3_inprocess) == ["stremora/" + name.removeprefix("s3:")]
    assert local_files(media_root) == []


def test_a_failing_provider_falls_through_to_the_next(settings, s3_refuses, s3_inprocess, media_root, caplog):
    settings.STORAGE_PROVIDERS = ["s3", "local"]

    with caplog.at_level(logging.WARNING, logger="storage_backends"):
        name = FallbackStorage().save("videos/clip.mp4", ContentFile(b"on disk"))

    assert name.startswith("local:videos/clip_")
    assert (media_root / name.removeprefix("local:")).read_bytes() == b"on disk"
    assert bucket_keys(s3_inprocess) == []
    warning = next(record for record in caplog.records if record.levelno == logging.WARNING)
    assert "Storage provider s3 failed to store videos/clip_" in warning.getMessage()
    assert "EndpointConnectionError" in warning.getMessage()


def test_all_providers_failing_is_one_error_naming_each_and_nothing_is_stored(
    settings, s3_refuses, s3_inprocess, tmp_path, user
):
    not_a_folder = tmp_path / "media-is-a-file"
    not_a_folder.write_text("")
    settings.MEDIA_ROOT = not_a_folder
    settings.STORAGE_PROVIDERS = ["cloudinary", "s3", "local"]

    with pytest.raises(StorageUnavailable) as excinfo:
        Video.objects.create(title="Lost?", owner=user, file=video_upload())

    message = str(excinfo.value)
    assert message.startswith("No storage provider could store the file (")
    assert "cloudinary: not configured" in message
    assert "s3: EndpointConnectionError" in message
    assert "local: " in message
    assert [failure.provider for failure in excinfo.value.failures] == ["cloudinary", "s3", "local"]
    assert "aws-secret-for-tests" not in message and "AKIAEXAMPLE" not in message
    assert Video.objects.count() == 0
    assert bucket_keys(s3_inprocess) == []
    assert not_a_folder.read_text() == ""


def test_reasons_never_carry_credentials(settings, s3_inprocess):
    settings.STORAGE_PROVIDERS = ["s3"]
    events = providers.get_storage("s3").connection.meta.client.meta.events

    def leak(**kwargs):
        raise RuntimeError("denied for AKIAEXAMPLE with aws-secret-for-tests")

    events.register("before-send.s3", leak)
    with pytest.raises(StorageUnavailable) as excinfo:
        FallbackStorage().save("videos/clip.mp4", ContentFile(b"x"))

    assert str(excinfo.value.failures[0]) == "s3: RuntimeError: denied for *** with ***"


def test_reads_go_to_the_provider_in_the_name_without_probing_others(settings, s3_inprocess, media_root):
    settings.STORAGE_PROVIDERS = ["s3", "local"]
    chain = FallbackStorage()
    on_s3 = chain.save("videos/a.mp4", ContentFile(b"s3 bytes"))
    settings.STORAGE_PROVIDERS = ["local"]
    on_disk = chain.save("videos/b.mp4", ContentFile(b"disk bytes"))

    s3_requests = []
    events = providers.get_storage("s3").connection.meta.client.meta.events
    events.register("before-send.s3", lambda **kwargs: s3_requests.append(kwargs["event_name"]))

    assert chain.open(on_disk).read() == b"disk bytes"
    assert chain.size(on_disk) == 10 and chain.exists(on_disk)
    assert chain.url(on_disk) == "/media/" + on_disk.removeprefix("local:")
    assert chain.path(on_disk) == str(media_root / on_disk.removeprefix("local:"))
    assert s3_requests == []

    assert "X-Amz-Signature=" in chain.url(on_s3)
    assert s3_requests == []  # presigning is not a request
    assert chain.open(on_s3).read() == b"s3 bytes"
    assert chain.size(on_s3) == 8
    chain.delete(on_s3)
    assert not chain.exists(on_s3)
    assert len(s3_requests) >= 3


def test_a_tripped_provider_is_skipped_until_its_cooldown_ends(settings, s3_refuses, media_root):
    settings.STORAGE_PROVIDERS = ["s3", "local"]
    settings.STORAGE_BREAKER_FAILURES = 2
    chain = FallbackStorage()

    for _ in range(2):
        chain.save("videos/clip.mp4", ContentFile(b"x"))
    tried_while_closed = len(s3_refuses)
    name = chain.save("videos/clip.mp4", ContentFile(b"x"))

    assert tried_while_closed > 0
    assert len(s3_refuses) == tried_while_closed  # open circuit: S3 not even tried
    assert name.startswith("local:")


def test_names_leave_room_for_the_provider_prefix(settings, media_root):
    settings.STORAGE_PROVIDERS = ["local"]

    name = FallbackStorage().save("videos/" + "n" * 300 + ".mp4", ContentFile(b"x"), max_length=100)

    assert len(name) <= 100 and name.startswith("local:videos/nnn")


def test_legacy_rows_are_read_from_cloudinary(settings):
    settings.CLOUDINARY_CLOUD_NAME = "demo"
    settings.CLOUDINARY_API_KEY = "123"
    settings.CLOUDINARY_API_SECRET = "abc"

    url = FallbackStorage().url("videos/old_upload.mp4")

    assert url == "https://res.cloudinary.com/demo/video/upload/v1/stremora/videos/old_upload.mp4"


def test_a_tripped_provider_is_still_tried_when_every_other_one_fails(settings, s3_refuses, media_root, caplog):
    settings.STORAGE_PROVIDERS = ["s3", "local"]
    settings.STORAGE_BREAKER_FAILURES = 1
    from storage_backends.breaker import CircuitBreaker

    CircuitBreaker("local").record_failure()  # local tripped earlier (a full disk, since freed)
    assert CircuitBreaker("local").is_open()

    with caplog.at_level(logging.INFO, logger="storage_backends"):
        name = FallbackStorage().save("videos/clip.mp4", ContentFile(b"kept"))

    assert name.startswith("local:")
    assert not CircuitBreaker("local").is_open()  # the success closed it
    messages = [record.getMessage() for record in caplog.records]
    assert any(message.startswith("Storage provider s3 failed to store videos/clip_") and ", trying the next one: " in message for message in messages)
    assert "Every other provider failed: trying local despite its open circuit" in messages


def test_the_last_provider_failing_does_not_promise_another(settings, s3_refuses, caplog):
    settings.STORAGE_PROVIDERS = ["s3"]

    with caplog.at_level(logging.WARNING, logger="storage_backends"):
        with pytest.raises(StorageUnavailable):
            FallbackStorage().save("videos/clip.mp4", ContentFile(b"x"))

    warning = next(record.getMessage() for record in caplog.records if record.levelno == logging.WARNING)
    assert warning.startswith("Storage provider s3 failed to store videos/clip_")
    assert "trying the next one" not in warning


def test_a_cache_failing_while_a_failure_is_counted_does_not_stop_the_chain(settings, s3_refuses, media_root, caplog):
    settings.STORAGE_PROVIDERS = ["s3", "local"]
    recount_failing = {"BACKEND": "tests.caches.RecountFailingCache"}
    settings.CACHES = {"default": recount_failing, "provider_health": recount_failing}

    with caplog.at_level(logging.WARNING, logger="storage_backends"):
        name = FallbackStorage().save("videos/clip.mp4", ContentFile(b"kept"))

    assert name.startswith("local:")
    assert (media_root / name.removeprefix("local:")).read_bytes() == b"kept"
    assert len(s3_refuses) > 0
    assert "Provider health cache unreachable (ConnectionError); this process keeps its own record for 5 s" in [
        record.getMessage() for record in caplog.records
    ]


@pytest.fixture
def storage_signals():
    """What the chain told listeners: ``[(signal name, details)]``."""
    from storage_backends import signals

    heard = []

    def stored(sender, **details):
        heard.append(("file_stored", details))

    def failed(sender, **details):
        heard.append(("store_failed", details))

    def broken(sender, **details):
        raise RuntimeError("a listener's own bug")

    signals.file_stored.connect(stored)
    signals.store_failed.connect(failed)
    signals.file_stored.connect(broken)
    yield heard
    signals.file_stored.disconnect(stored)
    signals.store_failed.disconnect(failed)
    signals.file_stored.disconnect(broken)


def test_listeners_hear_where_a_file_landed_and_why_others_did_not_take_it(
    settings, s3_refuses, media_root, storage_signals
):
    from storage_backends.errors import FailureKind

    settings.STORAGE_PROVIDERS = ["cloudinary", "s3", "local"]
    settings.CLOUDINARY_URL = ""

    name = FallbackStorage().save("videos/clip.mp4", ContentFile(b"12345"))

    [(signal, details)] = storage_signals
    assert signal == "file_stored"
    assert (details["provider"], details["name"], details["size"], details["via"]) == ("local", name, 5, "upload")
    assert [(failure.provider, failure.kind) for failure in details["failures"]] == [
        ("cloudinary", FailureKind.NOT_CONFIGURED),
        ("s3", FailureKind.FAULT),
    ]


def test_listeners_hear_when_no_provider_took_a_file(settings, s3_refuses, storage_signals):
    settings.STORAGE_PROVIDERS = ["s3"]

    with pytest.raises(StorageUnavailable):
        FallbackStorage().save("videos/clip.mp4", ContentFile(b"12345"))

    [(signal, details)] = storage_signals
    assert signal == "store_failed"
    assert [failure.provider for failure in details["failures"]] == ["s3"]
    assert details["via"] == "upload"
