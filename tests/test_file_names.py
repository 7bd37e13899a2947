"""Uploaded names in any script keep their extension, so the stored file is served as what it is."""

import pytest
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import video_upload
from videos.models import Video
from videos.validators import clean_file_name

NAMES_IN_MANY_SCRIPTS = [
    ("視頻.mp4", "video.mp4"),
    ("Видео с дачи.MP4", "video.mp4"),
    ("فيديو العطلة.mov", "video.mov"),
    ("🎬🍿.webm", "video.webm"),
    ("\u202eclip.mp4", "clip.mp4"),  # a right-to-left override in front
    ("סרטון\u200f.mkv", "video.mkv"),  # Hebrew with a right-to-left mark
    ("Отпуск 2024 holiday.mp4", "2024_holiday.mp4"),
    ("clip.ｍｐ４", "clip.mp4"),  # full-width letters in the extension
    ("../../etc/視頻.mp4", "video.mp4"),
    ("etc／視頻.mp4", "video.mp4"),  # a full-width solidus is a slash once normalised
    ("`.mkv", "video.mkv"),  # nothing of the name is kept
    ("#?!.mp4", "video.mp4"),
]


@pytest.mark.parametrize(("name", "cleaned"), NAMES_IN_MANY_SCRIPTS, ids=[name for name, _ in NAMES_IN_MANY_SCRIPTS])
def test_a_name_in_any_script_keeps_its_extension(name, cleaned):
    assert clean_file_name(name) == cleaned


@pytest.fixture
def api(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("視頻.mp4", "video/mp4"),
        ("Видео.MP4", "video/mp4"),
        ("فيديو.mov", "video/quicktime"),
        ("🎬.mp4", "video/mp4"),
    ],
)
def test_a_video_with_a_non_latin_name_is_stored_and_served_as_a_video(api, settings, media_root, name, content_type):
    settings.STORAGE_PROVIDERS = ["local"]

    response = api.post("/api/videos/", {"title": "Clip", "file": video_upload(name), "is_published": "true"})

    assert response.status_code == 201, response.content
    video = Video.objects.get()
    key = video.file.name.removeprefix("local:")
    assert key.startswith("videos/") and key.endswith("." + name.rpartition(".")[2].lower())
    served = APIClient().get(response.json()["video_url"])
    assert served.status_code == 200
    assert served["Content-Type"] == content_type


def test_the_admin_keeps_the_extension_of_a_non_latin_name(client, staff_user, media_root):
    client.force_login(staff_user)

    response = client.post(
        reverse("admin:videos_video_add"),
        {"title": "Clip", "description": "", "owner": staff_user.pk, "file": video_upload("視頻.mp4")},
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    key = Video.objects.get().file.name.removeprefix("local:")
    assert key.startswith("videos/") and key.endswith(".mp4")
    assert (media_root / key).is_file()


def test_cloudinary_stores_a_non_latin_name_as_a_video(api, settings, cloudinary_server):
    settings.STORAGE_PROVIDERS = ["cloudinary"]

    response = api.post("/api/videos/", {"title": "Clip", "file": video_upload("視頻.mp4")})

    assert response.status_code == 201, response.content
    assert [kind for kind, _ in cloudinary_server.resources()] == ["video"]  # not "raw", which does not play


def test_s3_stores_a_non_latin_name_with_a_video_content_type(api, settings, s3_inprocess):
    settings.STORAGE_PROVIDERS = ["s3"]

    response = api.post("/api/videos/", {"title": "Clip", "file": video_upload("Видео.mp4")})

    assert response.status_code == 201, response.content
    key = Video.objects.get().file.name.removeprefix("s3:")
    assert s3_inprocess.head_object(Bucket="stremora-test", Key=f"stremora/{key}")["ContentType"] == "video/mp4"


def test_s3_keeps_the_content_type_of_the_content_not_the_one_the_client_declared(
    api, client, staff_user, settings, s3_inprocess
):
    settings.STORAGE_PROVIDERS = ["s3"]
    declared_html = video_upload("clip.mov")
    declared_html.content_type = "text/html"
    client.force_login(staff_user)
    declared_svg = video_upload("clip.mp4")
    declared_svg.content_type = "image/svg+xml"

    assert api.post("/api/videos/", {"title": "API", "file": declared_html}).status_code == 201
    assert client.post(
        reverse("admin:videos_video_add"),
        {"title": "Admin", "description": "", "owner": staff_user.pk, "file": declared_svg},
    ).status_code == 302

    for video in Video.objects.all():
        stored = s3_inprocess.head_object(Bucket="stremora-test", Key="stremora/" + video.file.name.removeprefix("s3:"))
        assert (video.title, stored["ContentType"]) == (video.title, "video/mp4")  # what the first bytes are
