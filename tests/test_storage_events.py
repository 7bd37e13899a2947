"""The record of storage outcomes the admin's dashboard counts: one event per file
stored or refused, written without ever failing the upload, kept 90 days."""

from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.db import connection, transaction
from django.utils import timezone

from storage_backends.chain import FallbackStorage
from storage_backends.errors import StorageUnavailable
from tests.factories import video_upload
from videos import services, storage_events
from videos.models import StorageEvent, Video


def fields(event):
    return {
        key: getattr(event, key) for key in ("outcome", "via", "provider", "fallen_from", "reason_kind", "size_bytes")
    }


def test_a_file_that_fell_back_records_where_it_landed_and_what_failed_first(db, settings, s3_outage):
    settings.STORAGE_PROVIDERS = ["s3", "local"]

    name = FallbackStorage().save("videos/clip.mp4", ContentFile(b"12345"))

    event = StorageEvent.objects.get()
    assert event.name == name
    assert fields(event) == {
        "outcome": "stored",
        "via": "upload",
        "provider": "local",
        "fallen_from": "s3",
        "reason_kind": "fault",
        "size_bytes": 5,
    }


def test_a_provider_without_credentials_is_no_fallback(db, settings):
    settings.STORAGE_PROVIDERS = ["cloudinary", "local"]  # cloudinary has no credentials here

    FallbackStorage().save("videos/clip.mp4", ContentFile(b"12345"))

    event = StorageEvent.objects.get()
    assert (event.provider, event.fallen_from, event.reason_kind, event.fell_back) == ("local", "", "", False)


def test_a_file_no_provider_took_is_recorded_as_failed(db, settings, s3_outage, tmp_path):
    not_a_folder = tmp_path / "media-is-a-file"
    not_a_folder.write_text("")
    settings.MEDIA_ROOT = not_a_folder
    settings.STORAGE_PROVIDERS = ["s3", "local"]

    with pytest.raises(StorageUnavailable):
        FallbackStorage().save("videos/clip.mp4", ContentFile(b"12345"))

    event = StorageEvent.objects.get()
    assert fields(event) == {
        "outcome": "failed",
        "via": "upload",
        "provider": "",
        "fallen_from": "s3",
        "reason_kind": "fault",
        "size_bytes": None,
    }


@pytest.fixture
def refuse_storage_events(db):
    """PostgreSQL refuses every new event (a trigger raises), as a full table or a lost
    connection would."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE OR REPLACE FUNCTION refuse_storage_event() RETURNS trigger AS $$"
            " BEGIN RAISE EXCEPTION 'storage events are refused by the test'; END $$ LANGUAGE plpgsql"
        )
        cursor.execute(
            "CREATE TRIGGER refuse_storage_event BEFORE INSERT ON videos_storageevent"
            " FOR EACH ROW EXECUTE FUNCTION refuse_storage_event()"
        )
    yield
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER IF EXISTS refuse_storage_event ON videos_storageevent")
        cursor.execute("DROP FUNCTION IF EXISTS refuse_storage_event()")


def test_an_event_that_cannot_be_written_fails_neither_the_upload_nor_its_transaction(
    settings, user, refuse_storage_events, caplog
):
    settings.STORAGE_PROVIDERS = ["local"]

    with transaction.atomic():  # as a caller holding a transaction around the save would
        video = services.create_video(owner=user, title="Still stored", file=video_upload())
        Video.objects.filter(pk=video.pk).update(description="written after the failed event")

    assert Video.objects.get().description == "written after the failed event"
    assert video.file.storage.exists(video.file.name)
    assert not StorageEvent.objects.exists()
    assert "storage events are refused by the test" in caplog.text


def event_on_local(name, created_at):
    return StorageEvent.objects.create(outcome="stored", via="upload", provider="local", name=name, created_at=created_at)


def test_events_older_than_ninety_days_are_removed_once_a_day(db, settings):
    settings.STORAGE_PROVIDERS = ["local"]
    now = timezone.now()
    expired = event_on_local("local:videos/old.mp4", now - timedelta(days=91))
    kept = event_on_local("local:videos/recent.mp4", now - timedelta(days=89))
    storage_events.forget_last_prune()

    FallbackStorage().save("videos/clip.mp4", ContentFile(b"12345"))

    assert not StorageEvent.objects.filter(pk=expired.pk).exists()
    assert StorageEvent.objects.filter(pk=kept.pk).exists()

    expired_later = event_on_local("local:videos/old2.mp4", now - timedelta(days=95))
    FallbackStorage().save("videos/clip.mp4", ContentFile(b"12345"))

    assert StorageEvent.objects.filter(pk=expired_later.pk).exists()  # not again the same day
    assert StorageEvent.objects.count() == 4
