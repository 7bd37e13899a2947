"""Direct uploads through /api/uploads/, on the local target: the server receives the
chunks itself, checks the file on complete, and writes the row as a proxied upload would."""

import math
import os
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from storage_backends.breaker import CircuitBreaker
from tests.factories import sha256, video_bytes
from videos.models import UploadSession, Video


@pytest.fixture
def local_only(settings):
    settings.STORAGE_PROVIDERS = ["local"]


def client_for(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def api(user, local_only):
    return client_for(user)


def start(api, data, name="clip.mp4"):
    response = api.post("/api/uploads/", {"filename": name, "size": len(data), "content_type": "video/mp4"}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def put_chunk(api, upload, data, first, last=None):
    last = len(data) - 1 if last is None else last
    return api.put(
        f"/api/uploads/{upload['id']}/content",
        data[first : last + 1],
        content_type="application/octet-stream",
        HTTP_CONTENT_RANGE=f"bytes {first}-{last}/{len(data)}",
    )


def send_all(api, upload, data, chunk=40_000):
    for first in range(0, len(data), chunk):
        response = put_chunk(api, upload, data, first, min(first + chunk, len(data)) - 1)
        assert response.status_code == 200, response.content
    return response


def complete(api, upload, **fields):
    return api.post(f"/api/uploads/{upload['id']}/complete/", {"title": "Direct", **fields}, format="json")


def stored_path(settings, video):
    return Path(settings.MEDIA_ROOT) / video.file.name.split(":", 1)[1]


def files_under(root):
    return sorted(str(path.relative_to(root)) for path in Path(root).rglob("*") if path.is_file())


def test_a_local_upload_in_chunks_becomes_a_video_with_the_same_bytes(api, settings, user):
    data = video_bytes(100_000)
    upload = start(api, data)
    assert upload["provider"] == "local" and upload["status"] == "uploading"
    assert upload["target"]["method"] == "local-chunked"
    assert upload["target"]["url"].endswith(f"/api/uploads/{upload['id']}/content")
    assert send_all(api, upload, data).json() == {"received_bytes": len(data)}
    assert api.get(f"/api/uploads/{upload['id']}/").json()["received_bytes"] == len(data)

    response = complete(api, upload, description="straight to disk", is_published=True)

    assert response.status_code == 201, response.content
    video = Video.objects.get(pk=response.json()["id"])
    assert video.owner == user and video.storage_provider == "local"
    assert video.file.name.startswith("local:videos/") and video.file.name.endswith(".mp4")
    assert video.size_bytes == len(data) and video.content_type == "video/mp4"
    assert sha256(stored_path(settings, video).read_bytes()) == sha256(data)
    assert files_under(settings.MEDIA_ROOT) == [video.file.name.split(":", 1)[1]]  # no partial file left
    session = UploadSession.objects.get(pk=upload["id"])
    assert session.status == "completed" and session.video == video
    assert api.get(response.json()["video_url"]).status_code == 200


def test_complete_with_a_video_replaces_its_file_and_removes_the_old_one(
    api, settings, user, django_capture_on_commit_callbacks
):
    first, second = video_bytes(50_000), video_bytes(60_000)
    upload = start(api, first)
    send_all(api, upload, first)
    video = Video.objects.get(pk=complete(api, upload).json()["id"])
    old_path = stored_path(settings, video)

    upload = start(api, second)
    send_all(api, upload, second)
    with django_capture_on_commit_callbacks(execute=True):
        response = complete(api, upload, video=video.pk)

    assert response.status_code == 200, response.content
    video.refresh_from_db()
    assert video.title == "Direct" and video.size_bytes == len(second)
    assert sha256(stored_path(settings, video).read_bytes()) == sha256(second)
    assert not old_path.exists()


def test_another_users_upload_is_not_found(api, user, django_user_model):
    upload = start(api, video_bytes(1000))
    stranger = client_for(django_user_model.objects.create_user("stranger", password="pw-stranger-1"))
    data = video_bytes(1000)
    assert stranger.get(f"/api/uploads/{upload['id']}/").status_code == 404
    assert put_chunk(stranger, upload, data, 0).status_code == 404
    assert complete(stranger, upload).status_code == 404
    assert stranger.delete(f"/api/uploads/{upload['id']}/").status_code == 404


def test_anonymous_callers_cannot_start_or_send(local_only, db):
    anonymous = APIClient()
    assert anonymous.post("/api/uploads/", {"filename": "a.mp4", "size": 10}, format="json").status_code == 401


@pytest.mark.parametrize(
    "filename, size, status, message",
    [
        ("notes.txt", 1000, 400, "not accepted"),
        ("clip.mp4", 0, 400, "size"),
        ("clip.mp4", 3 * 1024 * 1024, 413, "limit of 2 MB"),
    ],
)
def test_a_bad_start_is_refused_and_opens_nothing(api, settings, filename, size, status, message):
    settings.MAX_UPLOAD_MB = 2
    response = api.post("/api/uploads/", {"filename": filename, "size": size}, format="json")
    assert response.status_code == status
    assert message in str(response.json())
    assert not UploadSession.objects.exists()
    assert files_under(settings.MEDIA_ROOT) == [] if Path(settings.MEDIA_ROOT).exists() else True


def test_a_chunk_out_of_order_or_past_the_declared_size_appends_nothing(api):
    data = video_bytes(100_000)
    upload = start(api, data)
    assert put_chunk(api, upload, data, 0, 39_999).status_code == 200

    skipped = put_chunk(api, upload, data, 50_000, 59_999)
    assert skipped.status_code == 400 and "starts at byte 40000" in skipped.json()["detail"]
    repeated = put_chunk(api, upload, data, 0, 39_999)
    assert repeated.status_code == 400
    past_end = api.put(
        f"/api/uploads/{upload['id']}/content",
        b"x" * 70_000,
        content_type="application/octet-stream",
        HTTP_CONTENT_RANGE=f"bytes 40000-109999/{len(data)}",
    )
    assert past_end.status_code == 400
    wrong_total = api.put(
        f"/api/uploads/{upload['id']}/content",
        data[40_000:50_000],
        content_type="application/octet-stream",
        HTTP_CONTENT_RANGE="bytes 40000-49999/200000",
    )
    assert wrong_total.status_code == 400
    assert api.get(f"/api/uploads/{upload['id']}/").json()["received_bytes"] == 40_000


def test_a_chunk_without_a_matching_content_range_is_refused(api):
    data = video_bytes(1000)
    upload = start(api, data)
    response = api.put(f"/api/uploads/{upload['id']}/content", data, content_type="application/octet-stream")
    assert response.status_code == 400 and "Content-Range" in response.json()["detail"]
    response = api.put(
        f"/api/uploads/{upload['id']}/content", data, content_type="application/octet-stream",
        HTTP_CONTENT_RANGE="bytes 0-499/1000",
    )
    assert response.status_code == 400


def test_a_chunk_larger_than_the_small_body_limit_is_taken_from_an_allowed_caller(api, settings):
    data = video_bytes(3 * 1024 * 1024)  # over DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB)
    upload = start(api, data)
    response = put_chunk(api, upload, data, 0)
    assert response.status_code == 200, response.content
    assert response.json() == {"received_bytes": len(data)}


def test_complete_before_every_byte_arrived_is_refused_and_removes_the_file(api, settings):
    data = video_bytes(100_000)
    upload = start(api, data)
    put_chunk(api, upload, data, 0, 39_999)

    response = complete(api, upload)

    assert response.status_code == 400
    assert "40000 bytes" in response.json()["detail"] and "100000 were declared" in response.json()["detail"]
    assert not Video.objects.exists()
    assert files_under(settings.MEDIA_ROOT) == []
    assert UploadSession.objects.get(pk=upload["id"]).status == "abandoned"


def test_complete_of_a_file_that_is_not_a_video_is_refused_and_removes_it(api, settings):
    data = b"%PDF-1.7\n" + b"0" * 50_000
    upload = start(api, data, name="clip.mp4")
    send_all(api, upload, data)

    response = complete(api, upload)

    assert response.status_code == 400 and "not a video" in response.json()["detail"]
    assert not Video.objects.exists()
    assert files_under(settings.MEDIA_ROOT) == []


def test_complete_with_nothing_sent_is_refused_and_the_upload_stays_open(api, settings):
    data = video_bytes(1000)
    upload = start(api, data)
    os.remove(next(Path(settings.MEDIA_ROOT).rglob("*.partial")))

    response = complete(api, upload)

    assert response.status_code == 400 and "holds no file" in response.json()["detail"]
    assert UploadSession.objects.get(pk=upload["id"]).status == "uploading"


def test_a_completed_upload_takes_nothing_more(api):
    data = video_bytes(1000)
    upload = start(api, data)
    send_all(api, upload, data)
    assert complete(api, upload).status_code == 201

    assert complete(api, upload).status_code == 409
    assert put_chunk(api, upload, data, 0).status_code == 409
    assert api.post(f"/api/uploads/{upload['id']}/fail/", {"reason": "x"}, format="json").status_code == 409
    assert Video.objects.count() == 1


def test_an_expired_upload_is_gone(api):
    data = video_bytes(1000)
    upload = start(api, data)
    UploadSession.objects.filter(pk=upload["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert put_chunk(api, upload, data, 0).status_code == 410
    response = complete(api, upload)
    assert response.status_code == 410 and "expired" in response.json()["detail"]
    assert not Video.objects.exists()


def test_abandoning_removes_the_partial_file(api, settings):
    data = video_bytes(100_000)
    upload = start(api, data)
    put_chunk(api, upload, data, 0, 39_999)

    assert api.delete(f"/api/uploads/{upload['id']}/").status_code == 204

    assert files_under(settings.MEDIA_ROOT) == []
    assert UploadSession.objects.get(pk=upload["id"]).status == "abandoned"


def test_fail_with_no_provider_left_answers_503_with_retry_after(api, settings):
    upload = start(api, video_bytes(1000))

    response = api.post(f"/api/uploads/{upload['id']}/fail/", {"reason": "connection refused"}, format="json")

    assert response.status_code == 503 and response["Retry-After"]
    assert files_under(settings.MEDIA_ROOT) == []
    session = UploadSession.objects.get(pk=upload["id"])  # the upload is over, and says what it left
    assert session.status == "abandoned" and [attempt["provider"] for attempt in session.tried] == ["local"]


def test_a_clients_report_alone_does_not_count_against_a_provider_that_answers(api, settings):
    settings.STORAGE_BREAKER_FAILURES = 1
    upload = start(api, video_bytes(1000))
    api.post(f"/api/uploads/{upload['id']}/fail/", {"reason": "timeout"}, format="json")
    assert not CircuitBreaker("local").is_open()


def test_a_clients_report_counts_when_the_servers_own_check_fails_too(api, settings, tmp_path):
    settings.STORAGE_BREAKER_FAILURES = 1
    upload = start(api, video_bytes(1000))
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    settings.MEDIA_ROOT = blocked  # the local provider's check cannot write there

    api.post(f"/api/uploads/{upload['id']}/fail/", {"reason": "timeout"}, format="json")

    assert CircuitBreaker("local").is_open()


def test_cleanup_orphans_keeps_open_uploads_and_removes_what_expired_ones_left(api, settings, capsys):
    data = video_bytes(100_000)
    open_upload, expired_upload = start(api, data), start(api, data)
    put_chunk(api, open_upload, data, 0, 39_999)
    put_chunk(api, expired_upload, data, 0, 39_999)
    UploadSession.objects.filter(pk=expired_upload["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    partials = files_under(settings.MEDIA_ROOT)
    assert len(partials) == 2

    call_command("cleanup_orphans", "--older-than", "0")
    assert files_under(settings.MEDIA_ROOT) == partials  # a dry run removes nothing
    assert "1 expired direct uploads" in capsys.readouterr().out

    call_command("cleanup_orphans", "--older-than", "0", "--delete")

    open_key = UploadSession.objects.get(pk=open_upload["id"]).key
    assert files_under(settings.MEDIA_ROOT) == [f"{open_key}.partial"]
    assert UploadSession.objects.get(pk=expired_upload["id"]).status == "expired"
    assert UploadSession.objects.get(pk=open_upload["id"]).status == "uploading"


def test_one_account_may_have_only_so_many_uploads_open(api, settings, monkeypatch):
    monkeypatch.setattr("videos.upload_sessions.OPEN_UPLOADS_PER_USER", 2)
    first, second = start(api, video_bytes(1000)), start(api, video_bytes(1000))

    refused = api.post("/api/uploads/", {"filename": "c.mp4", "size": 1000}, format="json")
    assert refused.status_code == 429 and "2 uploads open" in refused.json()["detail"]

    assert api.delete(f"/api/uploads/{first['id']}/").status_code == 204
    assert start(api, video_bytes(1000))["id"] not in (first["id"], second["id"])


def test_a_file_over_the_limit_on_complete_is_refused_with_413_and_removed(api, settings):
    settings.MAX_UPLOAD_MB = 2
    data = video_bytes(1_500_000)
    upload = start(api, data)
    send_all(api, upload, data, chunk=500_000)
    settings.MAX_UPLOAD_MB = 1  # lowered while the upload ran: the check on complete is the one that counts

    response = complete(api, upload)

    assert response.status_code == 413 and "limit of 1 MB" in response.json()["detail"]
    assert not Video.objects.exists()
    assert files_under(settings.MEDIA_ROOT) == []


def test_a_provider_that_cannot_take_direct_uploads_is_passed_over(api, settings, s3_inprocess, monkeypatch):
    from storage_backends import providers

    settings.STORAGE_PROVIDERS = ["s3", "local"]
    monkeypatch.setattr(providers.get_storage("s3"), "direct_uploads", None)

    upload = start(api, video_bytes(1000))

    assert upload["provider"] == "local"
    assert UploadSession.objects.get(pk=upload["id"]).tried == []  # not tried and failed: never a candidate
    assert s3_inprocess.list_multipart_uploads(Bucket="stremora-test").get("Uploads", []) == []


def provider_finishing_when_told(monkeypatch):
    """Make local disk join an upload's file only once the returned event is set (at
    most 10 s later), as a provider taking its time would."""
    from storage_backends.local_direct import LocalDirectUploads

    provider_done = threading.Event()
    finish = LocalDirectUploads.finish

    def slow_finish(*args):
        provider_done.wait(10)
        return finish(*args)

    monkeypatch.setattr(LocalDirectUploads, "finish", slow_finish)
    return provider_done


def complete_in_background(api, upload, **fields):
    """Asks for the completion in the background (unless already asked) and waits for its outcome."""
    if UploadSession.objects.get(pk=upload["id"]).status != "completing":
        response = api.post(
            f"/api/uploads/{upload['id']}/complete/", {"title": "Direct", **fields}, format="json",
            HTTP_PREFER="respond-async",
        )
        assert response.status_code == 202, response.content
        assert response["Preference-Applied"] == "respond-async" and response.json()["status"] == "completing"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        answer = api.get(f"/api/uploads/{upload['id']}/").json()
        if answer["status"] != "completing":
            return answer
        time.sleep(0.05)
    raise AssertionError("the completion did not finish within 30 s")


@pytest.mark.django_db(transaction=True)
def test_complete_in_the_background_answers_at_once_and_the_upload_tells_the_video(
    user, local_only, settings, monkeypatch
):
    api = client_for(user)
    data = video_bytes(100_000)
    upload = start(api, data)
    send_all(api, upload, data)
    # The provider takes its time joining the file: the request does not wait for it.
    provider_done = provider_finishing_when_told(monkeypatch)
    asked = time.monotonic()
    response = api.post(
        f"/api/uploads/{upload['id']}/complete/", {"title": "Direct", "is_published": True}, format="json",
        HTTP_PREFER="respond-async",
    )
    assert response.status_code == 202 and time.monotonic() - asked < 5
    waiting = api.get(f"/api/uploads/{upload['id']}/").json()
    assert waiting["status"] == "completing" and waiting["completed_video"] is None
    provider_done.set()

    answer = complete_in_background(api, upload)

    assert answer["status"] == "completed" and answer["error"] is None
    # The answer carries the video as its own address shows it: nothing more to ask.
    assert answer["completed_video"] == api.get(f"/api/videos/{answer['video']}/").json()
    video = Video.objects.get(pk=answer["video"])
    assert video.owner == user and video.storage_provider == "local" and video.is_published
    assert sha256(stored_path(settings, video).read_bytes()) == sha256(data)


@pytest.mark.django_db(transaction=True)
def test_a_background_completion_says_when_to_ask_from_how_long_the_last_large_ones_took(
    user, local_only, monkeypatch
):
    from videos import completion_times

    api = client_for(user)
    first, second = video_bytes(100_000), video_bytes(300_000)
    monkeypatch.setattr(completion_times, "LEARN_FROM_BYTES", len(first))  # this size counts as large
    ask_to_complete = {"title": "Direct"}

    upload = start(api, first)
    send_all(api, upload, first)
    response = api.post(f"/api/uploads/{upload['id']}/complete/", ask_to_complete, format="json",
                        HTTP_PREFER="respond-async")
    assert response.status_code == 202  # nothing learned yet: no word on when to ask
    assert response.json()["retry_after"] is None and "Retry-After" not in response
    assert complete_in_background(api, upload)["status"] == "completed"
    assert [size for _, size in completion_times.cache.get(completion_times._key("local"))] == [len(first)]

    # Had the last ones taken 3.4 s, a larger file is expected to take as long.
    for _ in range(completion_times.SAMPLES):
        completion_times.record("local", len(first), 3.4)
    provider_done = provider_finishing_when_told(monkeypatch)
    upload = start(api, second)
    send_all(api, upload, second)
    response = api.post(f"/api/uploads/{upload['id']}/complete/", ask_to_complete, format="json",
                        HTTP_PREFER="respond-async")
    assert response.status_code == 202
    retry_after = response.json()["retry_after"]  # 3.4 s, less the moments since the claim
    assert 2.4 < retry_after <= 3.4 and response["Retry-After"] == str(math.ceil(retry_after))  # whole seconds, up
    time.sleep(0.5)
    waiting = api.get(f"/api/uploads/{upload['id']}/").json()
    assert waiting["status"] == "completing" and waiting["retry_after"] < retry_after - 0.4  # what is left of it
    provider_done.set()

    answer = complete_in_background(api, upload)
    assert answer["status"] == "completed" and answer["retry_after"] is None


@pytest.mark.django_db(transaction=True)
def test_a_background_completion_that_fails_its_check_tells_why_and_removes_the_file(user, local_only, settings):
    api = client_for(user)
    data = b"%PDF-1.7\n" + b"0" * 50_000
    upload = start(api, data)
    send_all(api, upload, data)

    answer = complete_in_background(api, upload)

    assert answer["status"] == "abandoned" and answer["video"] is None and answer["completed_video"] is None
    assert answer["error"]["status"] == 400 and "not a video" in answer["error"]["detail"]
    assert not Video.objects.exists() and files_under(settings.MEDIA_ROOT) == []


@pytest.mark.django_db(transaction=True)
def test_a_background_completion_sent_too_early_leaves_the_upload_open_to_finish(user, local_only, settings):
    api = client_for(user)
    data = video_bytes(100_000)
    upload = start(api, data)
    os.remove(next(Path(settings.MEDIA_ROOT).rglob("*.partial")))

    answer = complete_in_background(api, upload)

    assert answer["status"] == "uploading" and "holds no file" in answer["error"]["detail"]


def test_a_completion_cut_off_by_a_dead_process_can_be_asked_again(api, settings):
    data = video_bytes(1000)
    upload = start(api, data)
    send_all(api, upload, data)
    UploadSession.objects.filter(pk=upload["id"]).update(status="completing", claimed_at=timezone.now())
    assert complete(api, upload).status_code == 409  # another request has it

    UploadSession.objects.filter(pk=upload["id"]).update(claimed_at=timezone.now() - timedelta(minutes=11))

    assert complete(api, upload).status_code == 201


def test_complete_may_not_replace_the_file_of_someone_elses_video(api, settings, django_user_model):
    other = client_for(django_user_model.objects.create_user("other", password="pw-other-1"))
    theirs = start(other, video_bytes(1000))
    send_all(other, theirs, video_bytes(1000))
    their_video = Video.objects.get(pk=complete(other, theirs, is_published=True).json()["id"])
    data = video_bytes(2000)
    upload = start(api, data)
    send_all(api, upload, data)

    response = complete(api, upload, video=their_video.pk)

    assert response.status_code == 400 and "owner or staff" in str(response.json()["video"])
    their_video.refresh_from_db()
    assert their_video.title == "Direct" and their_video.size_bytes == 1000
    assert UploadSession.objects.get(pk=upload["id"]).status == "uploading"
