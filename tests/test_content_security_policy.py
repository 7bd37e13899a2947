"""The Content-Security-Policy: on the public pages, the admin and the API docs; no
inline script anywhere it applies; players and posters allowed from the providers'
delivery hosts. (tests/test_browser.py checks that real pages load with no violation.)"""

import re

import pytest

from tests.factories import video_upload
from videos.models import Video

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def local_storage(settings):
    settings.STORAGE_PROVIDERS = ["local"]


def directives(response):
    policy = response["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in policy.split("; ")}


@pytest.fixture
def pages(client, staff_user):
    video = Video.objects.create(title="Harbour", owner=staff_user, file=video_upload(), is_published=True)
    return ["/", f"/videos/{video.pk}/", "/admin/login/", "/api/docs/", "/api/videos/?format=api"]


def test_every_page_forbids_scripts_from_elsewhere(client, pages):
    for path in pages:
        response = client.get(path)
        assert response.status_code == 200, path
        policy = directives(response)
        assert policy["script-src"] == ["'self'"], path
        assert policy["object-src"] == ["'none'"] and policy["base-uri"] == ["'self'"], path
        assert policy["frame-ancestors"] == ["'none'"], path


def test_the_admin_pages_of_a_signed_in_editor_have_it(client, staff_user):
    video = Video.objects.create(title="Harbour", owner=staff_user, file=video_upload())
    client.force_login(staff_user)

    admin_pages = ["/admin/", "/admin/videos/video/", "/admin/videos/video/add/", f"/admin/videos/video/{video.pk}/change/"]
    for path in admin_pages:
        response = client.get(path)
        assert response.status_code == 200, path
        assert directives(response)["script-src"] == ["'self'"], path


def test_no_page_carries_an_inline_script(client, pages, staff_user):
    client.force_login(staff_user)
    video = Video.objects.get()
    for path in pages + [f"/admin/videos/video/{video.pk}/change/", "/admin/videos/video/add/"]:
        html = client.get(path).content.decode()
        scripts = re.findall(r"<script\b([^>]*)>", html)
        inline = [attrs for attrs in scripts if "src=" not in attrs and "application/json" not in attrs]
        assert inline == [], path
    assert len(scripts) >= 3  # the last page, the admin's, has its scripts: the pattern finds them


def test_the_api_docs_start_up_script_is_served_from_this_site(client):
    html = client.get("/api/docs/").content.decode()
    script_url = re.search(r'<script src="([^"]*\?[^"]*script[^"]*)">', html).group(1).replace("&amp;", "&")

    script = client.get(script_url)

    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert b"SwaggerUIBundle" in script.content


def test_players_and_posters_may_come_from_the_providers(client, settings):
    settings.CLOUDINARY_DELIVERY_PREFIX = "https://cdn.example.net/videos"
    settings.AWS_S3_BUCKET_NAME = "stremora-videos"
    settings.AWS_S3_ENDPOINT_URL = None

    policy = directives(client.get("/"))

    assert policy["media-src"] == ["'self'", "https://cdn.example.net", "https://*.amazonaws.com"]
    assert policy["img-src"] == ["'self'", "data:", "https://cdn.example.net", "https://*.amazonaws.com"]
    settings.AWS_S3_ENDPOINT_URL = "http://minio.internal:9000"
    assert directives(client.get("/"))["media-src"][-1] == "http://minio.internal:9000"
    settings.AWS_S3_BUCKET_NAME = None
    assert directives(client.get("/"))["media-src"] == ["'self'", "https://cdn.example.net"]


@pytest.mark.parametrize("debug", [True, False])
def test_the_debug_page_keeps_its_scripts_and_a_real_500_keeps_the_policy(client, settings, monkeypatch, debug):
    from videos.views import VideoListView

    def fail(self):
        raise RuntimeError("the list broke")

    monkeypatch.setattr(VideoListView, "get_queryset", fail)
    settings.DEBUG = debug
    client.raise_request_exception = False

    response = client.get("/")

    assert response.status_code == 500
    assert ("Content-Security-Policy" in response) is not debug
    assert (b"the list broke" in response.content) is debug


def test_the_admin_may_send_direct_uploads_to_the_providers_upload_hosts(client, staff_user, settings):
    settings.CLOUDINARY_UPLOAD_PREFIX = "https://upload.example.net/base"
    settings.AWS_S3_BUCKET_NAME = "videos"
    settings.AWS_S3_ENDPOINT_URL = "https://s3.example.org:9000/"
    client.force_login(staff_user)

    policy = directives(client.get("/admin/videos/video/add/"))

    assert policy["connect-src"] == ["'self'", "https://upload.example.net", "https://s3.example.org:9000"]
    settings.AWS_S3_ENDPOINT_URL = None
    assert directives(client.get("/admin/videos/video/add/"))["connect-src"][-1] == "https://*.amazonaws.com"
