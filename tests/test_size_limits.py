"""Per-provider size limits: a file above a provider's limit skips it without a request;
a file above every configured provider's limit is the client's, refused with 413."""

import logging

import pytest
from django.core.files.base import ContentFile
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from storage_backends import signals
from storage_backends.breaker import CircuitBreaker
from storage_backends.chain import FallbackStorage
from storage_backends.errors import FailureKind, StorageUnavailable, TooLargeForProviders
from tests.factories import video_upload
from videos.models import UploadSession, Video

MB = 1024 * 1024
BUCKET = "stremora-test"


def client_for(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def bucket_keys(client):
    return [item["Key"] for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])]


def media_files(media_root):
    return [path for path in media_root.rglob("*") if path.is_file()]


@pytest.fixture
def failures_heard():
    heard = []

    def stored(sender, **details):
        heard.extend(details["failures"])

    signals.file_stored.connect(stored)
    yield heard
    signals.file_stored.disconnect(stored)


def test_a_file_above_a_providers_limit_skips_it_without_a_request(
    settings, cloudinary_server, s3_inprocess, failures_heard, caplog
):
    settings.STORAGE_PROVIDERS = ["cloudinary", "s3"]
    settings.CLOUDINARY_MAX_MB = 1
    settings.STORAGE_BREAKER_FAILURES = 1

    with caplog.at_level(logging.INFO, logger="storage_backends.chain"):
        name = FallbackStorage().save("videos/big.mp4", ContentFile(b"x" * (MB + 1)))

    assert name.startswith("s3:videos/big_")
    assert cloudinary_server.requests["upload"] == 0 and cloudinary_server.resources() == {}
    assert [(failure.provider, failure.kind) for failure in failures_heard] == [("cloudinary", FailureKind.TOO_LARGE)]
    skipped = [record for record in caplog.records if record.getMessage().startswith("Storage provider cloudinary skipped")]
    assert [record.levelno for record in skipped] == [logging.INFO]
    assert "larger than the 1 MB it takes" in skipped[0].getMessage()
    assert not CircuitBreaker("cloudinary").admit().skips  # not counted against it


def test_a_file_within_the_limit_still_goes_to_the_provider(settings, cloudinary_server, s3_inprocess):
    settings.STORAGE_PROVIDERS = ["cloudinary", "s3"]
    settings.CLOUDINARY_MAX_MB = 1

    name = FallbackStorage().save("videos/small.mp4", ContentFile(b"x" * MB))

    assert name.startswith("cloudinary:videos/small_")


def test_a_file_above_every_providers_limit_is_refused_with_the_largest_they_take(settings, s3_inprocess, media_root):
    settings.STORAGE_PROVIDERS = ["s3", "local"]
    settings.S3_MAX_MB = 1
    settings.LOCAL_MAX_MB = 2

    with pytest.raises(TooLargeForProviders) as refused:
        FallbackStorage().save("videos/huge.mp4", ContentFile(b"x" * (2 * MB + 1)))

    assert refused.value.largest == 2 * MB
    assert bucket_keys(s3_inprocess) == [] and media_files(media_root) == []


def test_the_api_answers_413_naming_the_largest_size_a_provider_takes(user, settings, s3_inprocess, media_root):
    settings.STORAGE_PROVIDERS = ["s3", "local"]
    settings.S3_MAX_MB = 1
    settings.LOCAL_MAX_MB = 1

    response = client_for(user).post("/api/videos/", {"title": "Huge", "file": video_upload(size=MB + 10)})

    assert response.status_code == 413, response.content
    assert response.json() == {"detail": "The file is 1.0\xa0MB; no storage provider takes a file larger than 1 MB."}
    assert not Video.objects.exists()
    assert bucket_keys(s3_inprocess) == [] and media_files(media_root) == []


def test_a_provider_without_a_limit_makes_a_large_file_storable(user, settings, s3_inprocess, tmp_path):
    settings.STORAGE_PROVIDERS = ["s3", "local"]
    settings.S3_MAX_MB = 1
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    settings.MEDIA_ROOT = blocked  # local has no limit, but fails now: try again later

    response = client_for(user).post("/api/videos/", {"title": "Big", "file": video_upload(size=MB + 10)})

    assert response.status_code == 503 and response["Retry-After"]
    assert bucket_keys(s3_inprocess) == []


def start_direct(api, size):
    return api.post("/api/uploads/", {"filename": "clip.mp4", "size": size, "content_type": "video/mp4"}, format="json")


def test_a_direct_upload_starts_on_the_first_provider_its_size_fits(user, settings, s3_inprocess):
    settings.STORAGE_PROVIDERS = ["s3", "local"]
    settings.S3_MAX_MB = 1

    response = start_direct(client_for(user), 2 * MB)

    assert response.status_code == 201, response.content
    assert response.json()["provider"] == "local"
    assert UploadSession.objects.get().tried == []
    assert s3_inprocess.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_a_direct_upload_larger_than_every_provider_takes_is_413(user, settings, s3_inprocess):
    settings.STORAGE_PROVIDERS = ["s3", "local"]
    settings.S3_MAX_MB = 1
    settings.LOCAL_MAX_MB = 3

    response = start_direct(client_for(user), 4 * MB)

    assert response.status_code == 413
    assert response.json()["detail"] == "The file is 4.0\xa0MB; no storage provider takes a file larger than 3 MB."
    assert not UploadSession.objects.exists()


def test_fail_does_not_move_an_upload_to_a_provider_it_is_too_large_for(user, settings, s3_inprocess):
    settings.STORAGE_PROVIDERS = ["local", "s3"]
    settings.S3_MAX_MB = 1
    api = client_for(user)
    upload = start_direct(api, 2 * MB).json()
    assert upload["provider"] == "local"

    response = api.post(f"/api/uploads/{upload['id']}/fail/", {"reason": "unreachable"}, format="json")

    assert response.status_code == 503
    assert s3_inprocess.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_limits_are_read_from_the_environment(tmp_path):
    from stremora.config import ConfigError, load_config

    config = load_config({"DEBUG": "true", "CLOUDINARY_MAX_MB": "100", "S3_MAX_MB": ""}, tmp_path)
    assert (config.cloudinary_max_mb, config.s3_max_mb, config.local_max_mb) == (100, None, None)
    with pytest.raises(ConfigError, match="LOCAL_MAX_MB must be a whole number"):
        load_config({"DEBUG": "true", "LOCAL_MAX_MB": "lots"}, tmp_path)


def test_no_configured_provider_is_unavailable_not_too_large(settings):
    settings.STORAGE_PROVIDERS = ["s3"]
    settings.AWS_S3_BUCKET_NAME = None
    settings.S3_MAX_MB = 1

    with pytest.raises(StorageUnavailable) as refused:
        FallbackStorage().save("videos/big.mp4", ContentFile(b"x" * (MB + 1)))

    assert type(refused.value) is StorageUnavailable
    assert [failure.kind for failure in refused.value.failures] == [FailureKind.NOT_CONFIGURED]
