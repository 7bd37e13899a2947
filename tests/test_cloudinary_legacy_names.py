"""Rows written by django-cloudinary-storage (CLOUDINARY_LEGACY_NAMES), and
CLOUDINARY_FOLDER, against the Cloudinary test server: no data migration, and new
uploads keep Stremora's prefixed names."""

import io
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image

from storage_backends.chain import FallbackStorage
from tests.factories import video_bytes
from videos import services
from videos.models import Video

VIDEO_PUBLIC_ID = "media/videos/clip_ab12cd"  # as VideoMediaCloudinaryStorage named it
POSTER_PUBLIC_ID = "media/images/poster_x1y2z3"  # as MediaCloudinaryStorage named it
LONG_AGO = datetime.now(timezone.utc) - timedelta(days=30)


def jpeg_bytes():
    buffer = io.BytesIO()
    Image.new("RGB", (32, 18), (200, 30, 30)).save(buffer, format="JPEG")
    return buffer.getvalue()


def fetch(url):
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read()


@pytest.fixture
def legacy_row(cloudinary_server, settings, user):
    """A video row as django-cloudinary-storage left it, its two resources on Cloudinary."""
    settings.CLOUDINARY_LEGACY_NAMES = "django-cloudinary-storage"
    cloudinary_server.put(VIDEO_PUBLIC_ID, video_bytes(3000), "video", "mp4", created_at=LONG_AGO)
    cloudinary_server.put(POSTER_PUBLIC_ID, jpeg_bytes(), "image", "jpg", created_at=LONG_AGO)
    video = Video.objects.create(
        owner=user, title="Old clip", file=VIDEO_PUBLIC_ID, thumbnail=POSTER_PUBLIC_ID, is_published=True
    )
    assert video.storage_provider == "cloudinary"
    return video


def test_urls_point_at_the_resources_of_each_fields_type(legacy_row, cloudinary_server):
    video_url, poster_url = legacy_row.file.url, legacy_row.thumbnail.url

    assert "/video/upload/" in video_url and video_url.endswith(VIDEO_PUBLIC_ID)
    assert "/image/upload/" in poster_url and poster_url.endswith(POSTER_PUBLIC_ID)
    assert fetch(video_url) == cloudinary_server.content(VIDEO_PUBLIC_ID, "video")
    assert fetch(poster_url) == cloudinary_server.content(POSTER_PUBLIC_ID, "image")


def test_sizes_and_verify_files_find_the_resources(legacy_row):
    assert legacy_row.file.size == 3000
    assert legacy_row.thumbnail.size == len(jpeg_bytes())
    out = io.StringIO()

    call_command("check_storage", "--verify-files", stdout=out, stderr=io.StringIO())

    assert "0 missing files" in out.getvalue()


def test_read_the_stremora_way_the_same_rows_are_missing(legacy_row, settings):
    settings.CLOUDINARY_LEGACY_NAMES = "stremora"
    err = io.StringIO()

    with pytest.raises(CommandError, match="2 missing files"):
        call_command("check_storage", "--verify-files", stdout=io.StringIO(), stderr=err)


def test_deleting_the_video_destroys_both_resources(legacy_row, cloudinary_server, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.delete_video(legacy_row)

    assert cloudinary_server.resources() == {}


def test_a_queued_deletion_of_a_thumbnail_finds_its_image_resource(legacy_row, cloudinary_server):
    # A name read without its field (the retry queue, default_storage) still reaches the image.
    default_storage.delete(POSTER_PUBLIC_ID)

    assert list(cloudinary_server.resources()) == [("video", VIDEO_PUBLIC_ID)]


def test_migrate_storage_moves_them_to_s3_with_their_format(
    legacy_row, cloudinary_server, s3_inprocess, settings, django_capture_on_commit_callbacks
):
    settings.STORAGE_PROVIDERS = ["cloudinary", "s3"]
    video_content = cloudinary_server.content(VIDEO_PUBLIC_ID, "video")

    with django_capture_on_commit_callbacks(execute=True):
        call_command("migrate_storage", "--to", "s3", stdout=io.StringIO(), stderr=io.StringIO())

    legacy_row.refresh_from_db()
    assert legacy_row.file.name == f"s3:{VIDEO_PUBLIC_ID}.mp4"
    assert legacy_row.thumbnail.name == f"s3:{POSTER_PUBLIC_ID}.jpg"
    assert legacy_row.storage_provider == "s3"
    stored = s3_inprocess.get_object(Bucket="stremora-test", Key=f"stremora/{VIDEO_PUBLIC_ID}.mp4")["Body"].read()
    assert stored == video_content
    assert cloudinary_server.resources() == {}


@pytest.mark.parametrize("folder", ["stremora", "media"])
def test_cleanup_orphans_leaves_them_alone_and_finds_a_real_orphan(legacy_row, cloudinary_server, settings, folder):
    settings.CLOUDINARY_FOLDER = folder  # "media": Stremora's own folder holds the old library's files too
    cloudinary_server.put(f"{folder}/videos/stray_zz9", video_bytes(100), "video", "mp4", created_at=LONG_AGO)
    out = io.StringIO()

    call_command("cleanup_orphans", "--provider", "cloudinary", "--delete", stdout=out, stderr=io.StringIO())

    assert "stray_zz9" in out.getvalue()
    assert VIDEO_PUBLIC_ID not in out.getvalue() and "clip_ab12cd" not in out.getvalue()
    assert sorted(cloudinary_server.resources()) == [("image", POSTER_PUBLIC_ID), ("video", VIDEO_PUBLIC_ID)]


def test_new_uploads_keep_stremoras_prefixed_names(legacy_row, cloudinary_server):
    name = FallbackStorage().save("videos/new.mp4", ContentFile(video_bytes(500)))

    assert name.startswith("cloudinary:videos/new_")
    public_id = "stremora/" + name.removeprefix("cloudinary:").removesuffix(".mp4")
    assert ("video", public_id) in cloudinary_server.resources()
    assert FallbackStorage().size(name) == 500


def test_a_new_folder_takes_new_uploads_and_old_names_keep_their_files(cloudinary_server, settings):
    settings.STORAGE_PROVIDERS = ["cloudinary"]
    old_name = FallbackStorage().save("videos/old.mp4", ContentFile(video_bytes(700)))
    assert old_name.startswith("cloudinary:videos/old_")

    settings.CLOUDINARY_FOLDER = "site1"
    new_name = FallbackStorage().save("videos/new.mp4", ContentFile(video_bytes(800)))

    assert new_name.startswith("cloudinary:site1:videos/new_")
    public_ids = {public_id for _, public_id in cloudinary_server.resources()}
    assert "site1/" + new_name.removeprefix("cloudinary:site1:").removesuffix(".mp4") in public_ids
    assert "stremora/" + old_name.removeprefix("cloudinary:").removesuffix(".mp4") in public_ids
    assert (FallbackStorage().size(old_name), FallbackStorage().size(new_name)) == (700, 800)
    old_public_id = "stremora/" + old_name.removeprefix("cloudinary:").removesuffix(".mp4")
    assert fetch(FallbackStorage().url(old_name)) == cloudinary_server.content(old_public_id)
    assert "/site1/videos/new_" in FallbackStorage().url(new_name)


def test_the_folder_and_the_naming_are_read_from_the_environment(tmp_path):
    from stremora.config import ConfigError, load_config

    config = load_config({"DEBUG": "true"}, tmp_path)
    assert (config.cloudinary_folder, config.cloudinary_legacy_names) == ("stremora", "stremora")
    config = load_config(
        {"DEBUG": "true", "CLOUDINARY_FOLDER": "/sites/one/", "CLOUDINARY_LEGACY_NAMES": "Django-Cloudinary-Storage"},
        tmp_path,
    )
    assert (config.cloudinary_folder, config.cloudinary_legacy_names) == ("sites/one", "django-cloudinary-storage")
    with pytest.raises(ConfigError, match="CLOUDINARY_LEGACY_NAMES must be one of"):
        load_config({"DEBUG": "true", "CLOUDINARY_LEGACY_NAMES": "cloudinary-storage"}, tmp_path)
    for folder in ("a/../b", "site:1", "a//b"):
        with pytest.raises(ConfigError, match="CLOUDINARY_FOLDER must be a folder path"):
            load_config({"DEBUG": "true", "CLOUDINARY_FOLDER": folder}, tmp_path)
