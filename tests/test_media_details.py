"""Duration and poster of uploaded videos: Cloudinary's answer, else ffprobe and ffmpeg."""

import io
import urllib.request

import pytest
from django.core.files.storage import default_storage
from PIL import Image
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import real_video, uploaded, video_upload
from videos import services
from videos.models import Video


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return real_video(tmp_path_factory.mktemp("clips"), seconds=2)


def image_size(data):
    return Image.open(io.BytesIO(data)).size


def test_a_video_on_local_disk_gets_its_duration_and_a_poster(settings, user, clip):
    settings.STORAGE_PROVIDERS = ["local"]

    video = services.create_video(owner=user, title="Clip", file=uploaded(clip))

    video.refresh_from_db()
    assert video.duration_seconds == pytest.approx(2.0, abs=0.1)
    assert video.thumbnail.name.startswith("local:thumbnails/") and video.thumbnail.name.endswith(".jpg")
    with video.thumbnail.open("rb") as poster:
        assert image_size(poster.read()) == (160, 90)
    assert services.poster_url(video).startswith(video.thumbnail.url + "?expires=")  # unpublished: signed


def test_an_uploaded_thumbnail_always_wins(settings, user, clip):
    settings.STORAGE_PROVIDERS = ["local"]
    chosen = io.BytesIO()
    Image.new("RGB", (32, 32), (0, 128, 0)).save(chosen, "PNG")
    from django.core.files.uploadedfile import SimpleUploadedFile

    video = services.create_video(
        owner=user, title="Clip", file=uploaded(clip), thumbnail=SimpleUploadedFile("mine.png", chosen.getvalue())
    )

    video.refresh_from_db()
    assert video.thumbnail.name.endswith(".png") and "mine" in video.thumbnail.name
    assert video.duration_seconds == pytest.approx(2.0, abs=0.1)


def test_without_ffmpeg_the_video_is_stored_with_no_duration_and_no_error(settings, user, clip, monkeypatch):
    settings.STORAGE_PROVIDERS = ["local"]
    monkeypatch.setenv("PATH", "/nonexistent")

    video = services.create_video(owner=user, title="Clip", file=uploaded(clip))

    video.refresh_from_db()
    assert video.duration_seconds is None and not video.thumbnail
    assert video.storage_provider == "local"


def test_a_file_ffprobe_cannot_read_is_still_stored(settings, user):
    settings.STORAGE_PROVIDERS = ["local"]

    video = services.create_video(owner=user, title="Header only", file=video_upload())

    video.refresh_from_db()
    assert video.duration_seconds is None and not video.thumbnail


def test_a_cloudinary_video_takes_duration_and_poster_from_cloudinary(settings, cloudinary_server, user, clip):
    settings.STORAGE_PROVIDERS = ["cloudinary", "local"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")

    response = client.post("/api/videos/", {"title": "Clip", "file": uploaded(clip), "is_published": "true"})

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["storage_provider"] == "cloudinary"
    assert body["duration_seconds"] == cloudinary_server.video_duration  # the upload answer's
    assert body["thumbnail_url"].startswith(cloudinary_server.url) and body["thumbnail_url"].endswith(".jpg")
    with urllib.request.urlopen(body["thumbnail_url"]) as poster:
        assert poster.headers["Content-Type"] == "image/jpeg"
    assert [kind for kind, _ in cloudinary_server.resources()] == ["video"]  # no poster uploaded


def test_replacing_the_file_cuts_a_new_poster_and_removes_the_old_one(
    settings, user, clip, tmp_path, django_capture_on_commit_callbacks
):
    settings.STORAGE_PROVIDERS = ["local"]
    video = services.create_video(owner=user, title="Clip", file=uploaded(clip))
    old_poster = video.thumbnail.name
    wider = real_video(tmp_path, "wide.mp4", seconds=2)
    import subprocess

    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(wider), "-vf", "scale=320:180", str(tmp_path / "wider.mp4")],
        check=True,
    )

    with django_capture_on_commit_callbacks(execute=True):
        services.update_video(video, file=uploaded(tmp_path / "wider.mp4"))

    video.refresh_from_db()
    assert video.thumbnail_generated and video.thumbnail.name != old_poster
    with video.thumbnail.open("rb") as poster:
        assert image_size(poster.read()) == (320, 180)
    assert not default_storage.exists(old_poster)


def test_a_chosen_thumbnail_survives_a_new_file(settings, user, clip, django_capture_on_commit_callbacks):
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.STORAGE_PROVIDERS = ["local"]
    chosen = io.BytesIO()
    Image.new("RGB", (32, 32), (0, 0, 200)).save(chosen, "PNG")
    video = services.create_video(owner=user, title="Clip", file=uploaded(clip))
    with django_capture_on_commit_callbacks(execute=True):
        services.update_video(video, thumbnail=SimpleUploadedFile("mine.png", chosen.getvalue()))
    chosen_name = video.thumbnail.name

    with django_capture_on_commit_callbacks(execute=True):
        services.update_video(video, file=uploaded(clip))

    video.refresh_from_db()
    assert (video.thumbnail.name, video.thumbnail_generated) == (chosen_name, False)


def test_a_video_uploaded_to_a_temporary_file_gets_its_duration_and_a_poster(settings, user, clip):
    settings.STORAGE_PROVIDERS = ["local"]
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 0  # as any upload over 2.5 MB: spooled to disk, then moved by local storage
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")

    response = client.post("/api/videos/", {"title": "Clip", "file": uploaded(clip)})

    assert response.status_code == 201, response.content
    video = Video.objects.get()
    assert video.duration_seconds == pytest.approx(2.0, abs=0.1)
    assert video.thumbnail_generated and video.thumbnail.name.endswith(".jpg")
