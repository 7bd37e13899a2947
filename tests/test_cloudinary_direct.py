"""Direct uploads to Cloudinary: the server signs, a plain HTTP client posts the chunks to
the Cloudinary test server, the server looks the resource up itself; then the same
through the API."""

import time
import types
from datetime import datetime, timedelta, timezone

import pytest
import requests
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from storage_backends import cloudinary_direct, providers
from storage_backends.cloudinary import CloudinaryStorage
from storage_backends.cloudinary_direct import CloudinaryDirectUploads
from storage_backends.direct import DirectUploadRefused
from tests.factories import sha256, video_bytes
from videos.models import Video

CHUNK_SIZE = 64 * 1024
KEY = "videos/2026/11/clip_k2P9xQa.mp4"
PUBLIC_ID = "stremora/videos/2026/11/clip_k2P9xQa"


@pytest.fixture
def storage(cloudinary_server):
    return CloudinaryStorage(
        cloud_name=cloudinary_server.cloud_name,
        api_key=cloudinary_server.api_key,
        api_secret=cloudinary_server.api_secret,
        upload_prefix=cloudinary_server.url,
        delivery_prefix=cloudinary_server.url,
        chunk_size=CHUNK_SIZE,
        timeout=5,
    )


@pytest.fixture
def direct(storage):
    return storage.direct_uploads


def expiry():
    return datetime.now(timezone.utc) + timedelta(hours=24)


def post_chunk(target, body, first, last, filename="clip.mp4", headers=None):
    """One chunk as a browser or any HTTP client sends it: the signed fields and the bytes."""
    return requests.post(
        target["url"],
        data=target["fields"],
        files={"file": (filename, body[first : last + 1], "application/octet-stream")},
        headers={
            "Content-Range": f"bytes {first}-{last}/{len(body)}",
            "X-Unique-Upload-Id": target["unique_upload_id"],
            **(headers or {}),
        },
        timeout=10,
    )


def chunk_ranges(size, chunk_size):
    return [(first, min(first + chunk_size, size) - 1) for first in range(0, size, chunk_size)]


def post_all(target, body, start_at=0):
    answers = [post_chunk(target, body, first, last) for first, last in chunk_ranges(len(body), target["chunk_size"])]
    return answers[start_at:] if start_at else answers


def signed_at(moment):
    """A stand-in for the module ``time`` whose clock reads ``moment`` (seconds since the epoch)."""
    return types.SimpleNamespace(time=lambda: moment)


def test_the_storage_offers_cloudinary_direct_uploads(cloudinary_server):
    direct = providers.get_storage("cloudinary").direct_uploads

    assert isinstance(direct, CloudinaryDirectUploads)
    assert direct.method == "cloudinary-chunked"


def test_start_signs_the_chosen_public_id_without_a_request(direct, cloudinary_server):
    started = direct.start(KEY, 3 * CHUNK_SIZE, "video/mp4", expires_at=expiry())

    assert sum(cloudinary_server.requests.values()) == 0
    assert started.state["public_id"] == PUBLIC_ID
    assert started.state["resource_type"] == "video"
    assert len(started.state["unique_upload_id"]) == 32
    target = started.target
    assert target["method"] == "cloudinary-chunked"
    assert target["url"] == f"{cloudinary_server.url}/v1_1/{cloudinary_server.cloud_name}/video/upload"
    assert target["chunk_size"] == CHUNK_SIZE
    assert target["unique_upload_id"] == started.state["unique_upload_id"]
    assert set(target["fields"]) == {"api_key", "timestamp", "public_id", "overwrite", "signature"}
    assert target["fields"]["public_id"] == PUBLIC_ID
    assert target["fields"]["overwrite"] == "false"
    assert abs(int(target["fields"]["timestamp"]) - time.time()) < 60
    assert "api_secret" not in str(target) and cloudinary_server.api_secret not in str(target)


def test_every_upload_has_its_own_unique_id(direct):
    ids = {direct.start(KEY, 10, "video/mp4", expires_at=expiry()).state["unique_upload_id"] for _ in range(5)}

    assert len(ids) == 5


def test_the_default_target_is_cloudinarys_upload_api():
    storage = CloudinaryStorage("demo", "key", "secret")

    target = storage.direct_uploads.start(KEY, 10, "video/mp4", expires_at=expiry()).target

    assert target["url"] == "https://api.cloudinary.com/v1_1/demo/video/upload"


@pytest.mark.parametrize("key", ["thumbnails/poster.jpg", "notes/readme.txt", "videos/clip"])
def test_only_videos_are_uploaded_directly(direct, key):
    with pytest.raises(DirectUploadRefused, match="Only videos"):
        direct.start(key, 10, "video/mp4", expires_at=expiry())


def test_a_chunked_upload_from_a_plain_client_round_trips(direct, storage, cloudinary_server):
    body = video_bytes(3 * CHUNK_SIZE - 1000)  # three chunks, the last one short
    started = direct.start(KEY, len(body), "video/mp4", expires_at=expiry())
    assert direct.received(KEY, started.state).received_bytes is None

    answers = post_all(started.target, body)

    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert all(answer.json()["public_id"] == PUBLIC_ID for answer in answers)
    last = answers[-1].json()
    assert last["bytes"] == len(body) and last["resource_type"] == "video"
    assert last["duration"] == cloudinary_server.video_duration
    assert sha256(cloudinary_server.content(PUBLIC_ID)) == sha256(body)
    assert direct.received(KEY, started.state).received_bytes == len(body)

    finished = direct.finish(KEY, started.state, {"public_id": last["public_id"]})

    assert finished.size == len(body)
    assert finished.details == {"duration": cloudinary_server.video_duration}
    assert storage.exists(KEY) and storage.size(KEY) == len(body)
    # Safe to call again, and the client's answer is optional.
    assert direct.finish(KEY, started.state, {}).size == len(body)


def test_received_knows_nothing_of_a_partial_upload(direct):
    body = video_bytes(3 * CHUNK_SIZE)
    started = direct.start(KEY, len(body), "video/mp4", expires_at=expiry())

    assert post_chunk(started.target, body, 0, CHUNK_SIZE - 1).status_code == 200

    assert direct.received(KEY, started.state).received_bytes is None


def test_a_resumed_upload_sends_every_chunk_again_under_the_same_id(direct, cloudinary_server):
    body = video_bytes(3 * CHUNK_SIZE)
    started = direct.start(KEY, len(body), "video/mp4", expires_at=expiry())
    for first, last in chunk_ranges(len(body), CHUNK_SIZE)[:2]:
        assert post_chunk(started.target, body, first, last).status_code == 200

    resumed = direct.target(KEY, started.state, expires_at=expiry())
    answers = post_all(resumed, body)

    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert sha256(cloudinary_server.content(PUBLIC_ID)) == sha256(body)


@pytest.mark.parametrize(
    "change",
    [
        {"public_id": "stremora/videos/2026/11/someone_elses"},
        {"public_id": "other-folder/clip_k2P9xQa"},
        {"overwrite": "true"},
        {"timestamp": "1"},
        {"folder": "elsewhere"},
        {"invalidate": "true"},
    ],
    ids=["another-public-id", "another-folder", "overwrite", "timestamp", "added-folder", "added-field"],
)
def test_the_signature_refuses_a_changed_or_added_field(direct, cloudinary_server, change):
    body = video_bytes(1000)
    target = direct.start(KEY, len(body), "video/mp4", expires_at=expiry()).target
    changed = {**target, "fields": {**target["fields"], **change}}

    answer = post_chunk(changed, body, 0, len(body) - 1)

    assert answer.status_code == 401
    assert answer.json()["error"]["message"].startswith("Invalid Signature")
    assert cloudinary_server.resources() == {}
    # The fields as signed are taken.
    assert post_chunk(target, body, 0, len(body) - 1).status_code == 200
    assert list(cloudinary_server.resources()) == [("video", PUBLIC_ID)]


def test_a_stale_signature_is_refused_and_a_fresh_target_carries_on(direct, cloudinary_server, monkeypatch):
    body = video_bytes(3 * CHUNK_SIZE)
    ranges = chunk_ranges(len(body), CHUNK_SIZE)
    monkeypatch.setattr(cloudinary_direct, "time", signed_at(time.time() - 3500))
    started = direct.start(KEY, len(body), "video/mp4", expires_at=expiry())
    assert post_chunk(started.target, body, *ranges[0]).status_code == 200

    monkeypatch.setattr(cloudinary_direct, "time", signed_at(time.time() - 3700))
    stale = direct.target(KEY, started.state, expires_at=expiry())
    answer = post_chunk(stale, body, *ranges[1])
    assert answer.status_code == 401
    assert answer.json()["error"]["message"].startswith("Stale request")

    monkeypatch.undo()
    fresh = direct.target(KEY, started.state, expires_at=expiry())
    assert fresh["unique_upload_id"] == started.target["unique_upload_id"]
    assert [post_chunk(fresh, body, *chunk).status_code for chunk in ranges[1:]] == [200, 200]
    assert sha256(cloudinary_server.content(PUBLIC_ID)) == sha256(body)


def test_an_upload_cannot_replace_a_resource_that_is_there(direct, storage, cloudinary_server):
    cloudinary_server.put(PUBLIC_ID, b"the editor's video")
    body = video_bytes(1000)
    target = direct.start(KEY, len(body), "video/mp4", expires_at=expiry()).target

    answer = post_chunk(target, body, 0, len(body) - 1)

    assert answer.json()["existing"] is True
    assert cloudinary_server.content(PUBLIC_ID) == b"the editor's video"


def test_finish_refuses_an_answer_for_another_file(direct, cloudinary_server):
    body = video_bytes(1000)
    started = direct.start(KEY, len(body), "video/mp4", expires_at=expiry())
    post_all(started.target, body)

    with pytest.raises(DirectUploadRefused, match="another file"):
        direct.finish(KEY, started.state, {"public_id": "stremora/videos/2026/11/someone_elses"})


def test_finish_before_the_resource_is_there_finds_no_file(direct):
    body = video_bytes(3 * CHUNK_SIZE)
    started = direct.start(KEY, len(body), "video/mp4", expires_at=expiry())
    post_chunk(started.target, body, 0, CHUNK_SIZE - 1)

    with pytest.raises(FileNotFoundError):
        direct.finish(KEY, started.state, {"public_id": PUBLIC_ID})


def test_read_head_reads_only_the_first_bytes(direct, cloudinary_server):
    body = video_bytes(3 * CHUNK_SIZE)
    started = direct.start(KEY, len(body), "video/mp4", expires_at=expiry())
    post_all(started.target, body)

    head = direct.read_head(KEY, 64)

    assert head == body[:64]
    assert cloudinary_server.delivered_bytes == 64


def test_read_head_of_a_missing_file(direct):
    with pytest.raises(FileNotFoundError):
        direct.read_head(KEY, 64)


def test_cloudinary_reports_duration_itself(direct):
    assert direct.probe_source(KEY) is None


def test_abort_removes_the_finished_resource(direct, cloudinary_server):
    body = video_bytes(1000)
    started = direct.start(KEY, len(body), "video/mp4", expires_at=expiry())
    post_all(started.target, body)
    assert list(cloudinary_server.resources()) == [("video", PUBLIC_ID)]

    direct.abort(KEY, started.state)

    assert cloudinary_server.resources() == {}
    direct.abort(KEY, started.state)  # nothing left: not an error


def test_the_upload_api_answers_a_cors_preflight(direct, cloudinary_server):
    target = direct.start(KEY, 1000, "video/mp4", expires_at=expiry()).target

    answer = requests.options(
        target["url"],
        headers={
            "Origin": "https://admin.example.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-range, x-unique-upload-id",
        },
        timeout=10,
    )

    assert answer.status_code == 200
    assert answer.headers["Access-Control-Allow-Origin"] == "https://admin.example.org"
    assert "POST" in answer.headers["Access-Control-Allow-Methods"]
    allowed = {header.strip().lower() for header in answer.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"content-range", "x-unique-upload-id"} <= allowed
    assert cloudinary_server.resources() == {}


def test_upload_answers_carry_cors_headers_even_when_refused(direct):
    body = video_bytes(1000)
    target = direct.start(KEY, len(body), "video/mp4", expires_at=expiry()).target
    origin = {"Origin": "https://admin.example.org"}

    accepted = post_chunk(target, body, 0, len(body) - 1, headers=origin)
    target["fields"]["public_id"] = "stremora/elsewhere"
    refused = post_chunk(target, body, 0, len(body) - 1, headers=origin)

    for answer in (accepted, refused):
        assert answer.headers["Access-Control-Allow-Origin"] == "https://admin.example.org"
        assert "X-Request-Id" in answer.headers["Access-Control-Expose-Headers"]
    assert (accepted.status_code, refused.status_code) == (200, 401)


def test_a_unique_id_stays_with_the_file_it_started(storage, direct, cloudinary_server):
    body = video_bytes(2 * CHUNK_SIZE)
    started = direct.start(KEY, len(body), "video/mp4", expires_at=expiry())
    assert post_chunk(started.target, body, 0, CHUNK_SIZE - 1).status_code == 200
    other = direct.start("videos/2026/11/other_aaaaaaa.mp4", len(body), "video/mp4", expires_at=expiry()).target
    other["unique_upload_id"] = started.state["unique_upload_id"]

    answer = post_chunk(other, body, CHUNK_SIZE, len(body) - 1)

    assert answer.status_code == 400
    assert cloudinary_server.resources() == {}


def test_chunks_posted_as_a_bare_blob_make_a_video_of_the_format_its_bytes_show(storage, direct, cloudinary_server):
    body = video_bytes(2 * CHUNK_SIZE)
    target = direct.start(KEY, len(body), "video/mp4", expires_at=expiry()).target

    answers = [post_chunk(target, body, first, last, filename="blob") for first, last in chunk_ranges(len(body), CHUNK_SIZE)]

    assert answers[-1].json()["format"] == "mp4"
    assert [stored.key for stored in storage.iter_files()] == [KEY]


@pytest.fixture
def api(cloudinary_server, user, settings, media_root):
    settings.STORAGE_PROVIDERS = ["cloudinary", "local"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


@pytest.mark.django_db
def test_a_direct_upload_through_the_api_lands_on_cloudinary(api, cloudinary_server, user):
    body = video_bytes(20_000_000 + 4096)  # two chunks of the target's 20 MB

    started = api.post(
        "/api/uploads/", {"filename": "clip.mp4", "size": len(body), "content_type": "video/mp4"}, format="json"
    )
    assert started.status_code == 201, started.content
    upload = started.json()
    assert upload["provider"] == "cloudinary"
    target = upload["target"]
    assert target["method"] == "cloudinary-chunked"
    assert api.get(f"/api/uploads/{upload['id']}/").json()["received_bytes"] is None
    answers = post_all(target, body)
    assert [answer.status_code for answer in answers] == [200, 200]
    public_id = answers[-1].json()["public_id"]
    assert api.get(f"/api/uploads/{upload['id']}/").json()["received_bytes"] == len(body)

    completed = api.post(
        f"/api/uploads/{upload['id']}/complete/",
        {"title": "Straight to Cloudinary", "public_id": public_id},
        format="json",
    )

    assert completed.status_code == 201, completed.content
    video = Video.objects.get(pk=completed.json()["id"])
    assert video.storage_provider == "cloudinary"
    assert video.owner == user
    assert video.duration_seconds == cloudinary_server.video_duration
    assert video.file.name.startswith("cloudinary:videos/") and video.file.name.endswith(".mp4")
    assert sha256(cloudinary_server.content(public_id)) == sha256(body)
    assert public_id == "stremora/" + video.file.name.removeprefix("cloudinary:").removesuffix(".mp4")


@pytest.mark.django_db
def test_completing_with_another_public_id_is_refused_through_the_api(api, cloudinary_server):
    body = video_bytes(4096)
    upload = api.post(
        "/api/uploads/", {"filename": "clip.mp4", "size": len(body), "content_type": "video/mp4"}, format="json"
    ).json()
    public_id = post_all(upload["target"], body)[-1].json()["public_id"]

    refused = api.post(
        f"/api/uploads/{upload['id']}/complete/",
        {"title": "Not mine", "public_id": "stremora/videos/someone_elses"},
        format="json",
    )

    assert refused.status_code == 400
    assert "another file" in str(refused.json())
    assert not Video.objects.exists()
    completed = api.post(
        f"/api/uploads/{upload['id']}/complete/", {"title": "Mine", "public_id": public_id}, format="json"
    )
    assert completed.status_code == 201, completed.content


def test_a_direct_upload_goes_under_cloudinary_folder_and_its_row_names_it(api, cloudinary_server, settings):
    settings.CLOUDINARY_FOLDER = "site1"
    body = video_bytes(4096)
    upload = api.post(
        "/api/uploads/", {"filename": "clip.mp4", "size": len(body), "content_type": "video/mp4"}, format="json"
    ).json()
    assert upload["target"]["fields"]["public_id"].startswith("site1/videos/")
    public_id = post_all(upload["target"], body)[-1].json()["public_id"]

    completed = api.post(
        f"/api/uploads/{upload['id']}/complete/", {"title": "In a folder", "public_id": public_id}, format="json"
    )

    assert completed.status_code == 201, completed.content
    video = Video.objects.get(pk=completed.json()["id"])
    assert video.file.name == "cloudinary:site1:" + public_id.removeprefix("site1/") + ".mp4"
    assert video.file.size == len(body)


def test_an_expired_upload_on_a_provider_no_longer_configured_is_kept_for_later(user, settings):
    from django.utils import timezone

    from videos import upload_sessions
    from videos.models import UploadSession

    settings.CLOUDINARY_CLOUD_NAME = None  # Cloudinary's credentials were removed since the upload started
    session = UploadSession.objects.create(
        owner=user, filename="clip.mp4", size=10, content_type="video/mp4", key=KEY, provider="cloudinary",
        state={"public_id": PUBLIC_ID}, expires_at=timezone.now() - timedelta(hours=1),
    )

    assert upload_sessions.sweep_expired() == (1, 0, 1)
    assert UploadSession.objects.get(pk=session.pk).status != "expired"
