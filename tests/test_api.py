"""The REST API: permissions, listing, uploads, replacement and deletion, health, schema."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from storage_backends.breaker import CircuitBreaker
from tests.factories import sha256, video_upload
from videos.models import Video

pytestmark = pytest.mark.django_db

LIST_URL = "/api/videos/"


def detail_url(video):
    return f"/api/videos/{video.pk}/"


@pytest.fixture(autouse=True)
def local_storage(settings):
    settings.STORAGE_PROVIDERS = ["local"]


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user("other", "other@example.com", "pw-other-1")


def client_for(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def make_video(owner, title="Clip", published=True, **fields):
    return Video.objects.create(title=title, owner=owner, file=video_upload(), is_published=published, **fields)


def titles(response):
    return sorted(video["title"] for video in response.json()["results"])


def test_a_token_is_issued_for_a_username_and_password(api, user):
    response = api.post("/api/auth/token/", {"username": "viewer", "password": "pw-viewer-1"})

    assert response.status_code == 200
    assert response.json()["token"] == Token.objects.get(user=user).key
    assert api.post("/api/auth/token/", {"username": "viewer", "password": "wrong"}).status_code == 400


def test_who_sees_what_in_the_list(api, user, other_user, staff_user):
    make_video(user, "Mine published")
    make_video(user, "Mine draft", published=False)
    make_video(other_user, "Theirs draft", published=False)

    assert titles(api.get(LIST_URL)) == ["Mine published"]
    assert titles(client_for(user).get(LIST_URL)) == ["Mine draft", "Mine published"]
    assert titles(client_for(other_user).get(LIST_URL)) == ["Mine published", "Theirs draft"]
    assert len(titles(client_for(staff_user).get(LIST_URL))) == 3


def test_an_unpublished_video_is_a_404_to_others(api, user, other_user, staff_user):
    draft = make_video(user, published=False)

    assert api.get(detail_url(draft)).status_code == 404
    assert client_for(other_user).get(detail_url(draft)).status_code == 404
    assert client_for(user).get(detail_url(draft)).status_code == 200
    assert client_for(staff_user).get(detail_url(draft)).status_code == 200


def test_a_video_reads_as_the_contract_says(api, user):
    video = make_video(user, description="Boats at dawn")

    body = api.get(detail_url(video)).json()

    assert set(body) == {
        "id", "title", "description", "video_url", "thumbnail_url", "storage_provider", "size_bytes",
        "content_type", "duration_seconds", "processing", "is_published", "owner", "created_at", "updated_at",
    }
    assert body["processing"] == "done"
    assert body["video_url"].startswith("http://testserver/media/videos/")
    assert body["thumbnail_url"] is None
    assert (body["storage_provider"], body["owner"]) == ("local", user.pk)


def test_upload_creates_the_video_on_the_first_provider(user, media_root):
    upload = video_upload("holiday.mp4", size=5000)
    response = client_for(user).post(LIST_URL, {"title": "New", "file": upload, "is_published": "true"})

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["storage_provider"], body["size_bytes"], body["content_type"]) == ("local", 5000, "video/mp4")
    video = Video.objects.get()
    assert video.owner == user and video.is_published
    assert sha256((media_root / video.file.name.removeprefix("local:")).read_bytes()) == sha256(upload.body)


def test_anonymous_clients_cannot_upload(api, media_root):
    response = api.post(LIST_URL, {"title": "New", "file": video_upload()})

    assert response.status_code == 401
    assert not Video.objects.exists()


def test_only_the_owner_or_staff_may_change_or_delete(
    user, other_user, staff_user, media_root, django_capture_on_commit_callbacks
):
    video = make_video(user)
    path = media_root / video.file.name.removeprefix("local:")
    content = path.read_bytes()

    assert client_for(other_user).patch(detail_url(video), {"title": "Hijacked"}).status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        assert client_for(other_user).delete(detail_url(video)).status_code == 403
    assert Video.objects.get(pk=video.pk).file.name == video.file.name
    assert sha256(path.read_bytes()) == sha256(content)
    assert client_for(user).patch(detail_url(video), {"title": "Renamed"}).status_code == 200
    assert client_for(staff_user).patch(detail_url(video), {"title": "Edited"}).status_code == 200
    assert Video.objects.get().title == "Edited"


def test_a_new_file_replaces_the_old_one(user, media_root, django_capture_on_commit_callbacks):
    video = make_video(user)
    old_path = media_root / video.file.name.removeprefix("local:")

    upload = video_upload("recut.mp4", size=9000)
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(user).patch(detail_url(video), {"file": upload})

    assert response.status_code == 200, response.content
    assert response.json()["size_bytes"] == 9000
    assert not old_path.exists()
    video.refresh_from_db()
    assert sha256((media_root / video.file.name.removeprefix("local:")).read_bytes()) == sha256(upload.body)


def test_delete_removes_the_video_and_its_file(user, media_root, django_capture_on_commit_callbacks):
    video = make_video(user)
    path = media_root / video.file.name.removeprefix("local:")

    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(user).delete(detail_url(video))

    assert response.status_code == 204
    assert not Video.objects.exists() and not path.exists()


def test_filters_search_ordering_and_pages(api, user, other_user):
    make_video(user, "Harbour at dawn", description="boats")
    make_video(other_user, "Kitchen tour")
    make_video(user, "Alpine pass")
    Video.objects.filter(title="Kitchen tour").update(storage_provider="s3", file="s3:videos/kitchen.mp4")

    on_s3 = api.get(LIST_URL, {"storage_provider": "s3"})
    assert titles(on_s3) == ["Kitchen tour"]
    assert on_s3.json()["results"][0]["video_url"] is None  # S3 is not configured here
    assert titles(api.get(LIST_URL, {"owner": other_user.pk})) == ["Kitchen tour"]
    assert titles(api.get(LIST_URL, {"search": "boats"})) == ["Harbour at dawn"]
    ordered = api.get(LIST_URL, {"ordering": "title"}).json()["results"]
    assert [video["title"] for video in ordered] == ["Alpine pass", "Harbour at dawn", "Kitchen tour"]
    page = api.get(LIST_URL, {"page_size": 2}).json()
    assert (page["count"], len(page["results"]), page["previous"]) == (3, 2, None)
    assert "page=2" in page["next"]
    assert api.get(LIST_URL, {"storage_provider": "ftp"}).status_code == 400


def test_the_list_costs_the_same_queries_for_1_and_50_videos(api, user, settings, s3_inprocess):
    def queries_for_list():
        with CaptureQueriesContext(connection) as queries:
            assert api.get(LIST_URL, {"page_size": 100}).status_code == 200
        return len(queries)

    make_video(user, "Only one")
    one = queries_for_list()
    for number in range(49):
        Video.objects.create(
            title=f"Clip {number}", owner=user, is_published=True,
            file=f"s3:videos/clip{number}.mp4" if number % 2 else f"local:videos/clip{number}.mp4",
        )

    assert queries_for_list() == one


def test_no_provider_able_to_store_is_a_503_with_retry_after(user, settings, tmp_path):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    settings.MEDIA_ROOT = blocked
    settings.STORAGE_BREAKER_COOLDOWN = 45

    response = client_for(user).post(LIST_URL, {"title": "New", "file": video_upload()})

    assert response.status_code == 503
    assert response["Retry-After"] == "45"
    assert response.json() == {"detail": "No storage provider could store the file. Try again later."}
    assert not Video.objects.exists()
    assert blocked.read_text() == ""


def test_health_reports_each_provider_to_staff(staff_user, settings):
    settings.STORAGE_PROVIDERS = ["cloudinary", "s3", "local"]

    assert client_for(staff_user).get("/api/health/").json() == {
        "status": "ok",
        "providers": [
            {"name": "cloudinary", "configured": False, "available": False},
            {"name": "s3", "configured": False, "available": False},
            {"name": "local", "configured": True, "available": True},
        ],
    }


def test_health_is_degraded_then_down_as_breakers_open(api, settings, s3_inprocess):
    settings.STORAGE_PROVIDERS = ["s3", "local"]
    settings.STORAGE_BREAKER_FAILURES = 1

    CircuitBreaker("s3").record_failure()
    assert api.get("/api/health/").json()["status"] == "degraded"
    CircuitBreaker("local").record_failure()
    response = api.get("/api/health/")
    assert (response.status_code, response.json()["status"]) == (503, "down")


def test_schema_and_docs_are_served(api):
    schema = api.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/videos/" in schema.content
    docs = api.get("/api/docs/")
    assert docs.status_code == 200
    assert b"cdn.jsdelivr.net" not in docs.content  # works with no internet
    assert b"/static/drf_spectacular_sidecar/swagger-ui-dist/" in docs.content


def test_the_schema_validates():
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")


def test_put_replaces_the_metadata(user):
    video = make_video(user, "Old title", description="old")

    response = client_for(user).put(
        detail_url(video), {"title": "New title", "description": "", "is_published": "false"}, format="multipart"
    )

    assert response.status_code == 200, response.content
    video.refresh_from_db()
    assert (video.title, video.description, video.is_published) == ("New title", "", False)


def test_the_list_builds_urls_without_a_network_call(api, user, settings, s3_inprocess, cloudinary_server):
    from storage_backends import providers

    for number, provider in enumerate(["s3", "cloudinary", "local"] * 3):
        Video.objects.create(
            title=f"Clip {number}", owner=user, is_published=True, file=f"{provider}:videos/clip{number}.mp4"
        )
    s3_requests = []
    events = providers.get_storage("s3").connection.meta.client.meta.events
    events.register("before-send.s3", lambda **kwargs: s3_requests.append(kwargs["event_name"]))

    results = api.get(LIST_URL).json()["results"]

    assert len(results) == 9 and all(video["video_url"] for video in results)
    assert s3_requests == []
    assert sum(cloudinary_server.requests.values()) == 0


def test_anonymous_clients_are_throttled(api, monkeypatch):
    from videos.api.throttling import AnonThrottle

    monkeypatch.setattr(AnonThrottle, "THROTTLE_RATES", {"anon": "3/minute"})

    statuses = [api.get(LIST_URL).status_code for _ in range(4)]

    assert statuses == [200, 200, 200, 429]


def test_a_cache_outage_costs_no_request(user, media_root):
    from django.test import override_settings

    from tests.caches import unreachable_redis_caches

    client = client_for(user)
    with override_settings(CACHES=unreachable_redis_caches()):
        assert client.get(LIST_URL).status_code == 200
        assert APIClient().get(LIST_URL).status_code == 200
        response = client.post(LIST_URL, {"title": "During the outage", "file": video_upload()})
        assert response.status_code == 201, response.content
        assert client.get("/api/health/").status_code == 200
        token = APIClient().post("/api/auth/token/", {"username": "viewer", "password": "pw-viewer-1"})
        assert token.status_code == 200
