from django.db import connection
from django.utils import timezone

from tests.factories import video_upload
from videos.models import StorageProvider, Video


def test_storage_provider_defaults_to_cloudinary():
    video = Video(title="Launch")

    assert video.storage_provider == StorageProvider.CLOUDINARY == "cloudinary"
    assert video.is_published is False
    assert video.duration_seconds is None
    assert str(video) == "Launch"


def test_saved_video_records_the_provider_that_took_its_file(user, settings):
    settings.STORAGE_PROVIDERS = ["local"]

    video = Video.objects.create(title="Launch", owner=user, file=video_upload())

    video.refresh_from_db()
    assert video.storage_provider == "local"
    assert video.file.name.startswith("local:videos/")


def test_row_written_without_a_provider_reads_as_cloudinary(user):
    """Rows from before storage_provider existed: the database supplies the default."""
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO videos_video (title, description, owner_id, file, thumbnail, size_bytes,"
            " content_type, is_published, created_at, updated_at)"
            " VALUES (%s, '', %s, 'videos/old.mp4', '', 0, '', false, %s, %s)",
            ["Old upload", user.pk, now, now],
        )

    assert Video.objects.get(title="Old upload").storage_provider == "cloudinary"


def test_storage_provider_is_indexed(db):
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, Video._meta.db_table)
    indexed_columns = [info["columns"] for info in constraints.values() if info["index"]]
    assert ["storage_provider"] in indexed_columns


def test_newest_videos_come_first(user):
    first = Video.objects.create(title="First", owner=user, file=video_upload())
    second = Video.objects.create(title="Second", owner=user, file=video_upload())

    assert list(Video.objects.all()) == [second, first]
