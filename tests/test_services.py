"""The service layer: files stored before the row, old files removed after the commit."""

import time
from datetime import timedelta

import psycopg
import pytest
from django.conf import settings as django_settings
from django.core.files.storage import default_storage
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from storage_backends import providers
from storage_backends.errors import StorageUnavailable
from tests.factories import real_video, sha256, uploaded, video_upload
from videos import services
from videos.models import PendingDeletion, StorageEvent, Video

BUCKET = "stremora-test"


def on_disk(media_root, name):
    return (media_root / name.removeprefix("local:")).exists()


def files_on_disk(media_root):
    return sorted(path.relative_to(media_root).as_posix() for path in media_root.rglob("*") if path.is_file())


def files_on(provider, media_root, s3_client=None):
    """What ``provider`` holds: local paths, or S3 keys."""
    if provider == "s3":
        return [item["Key"] for item in s3_client.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    return files_on_disk(media_root)


def digest_on_disk(media_root, name):
    return sha256((media_root / name.removeprefix("local:")).read_bytes())


@pytest.fixture
def local_only(settings):
    settings.STORAGE_PROVIDERS = ["local"]


@pytest.fixture
def s3_deletes_fail(s3_inprocess):
    def refuse(**kwargs):
        raise ConnectionError("S3 is unreachable")

    events = providers.get_storage("s3").connection.meta.client.meta.events
    events.register("before-send.s3.DeleteObject", refuse)
    yield
    events.unregister("before-send.s3.DeleteObject", refuse)


def test_create_stores_the_file_and_describes_it(local_only, user, media_root):
    video = services.create_video(owner=user, title="Clip", file=video_upload(size=3000), is_published=True)

    video.refresh_from_db()
    assert video.storage_provider == "local"
    assert (video.size_bytes, video.content_type, video.is_published) == (3000, "video/mp4", True)
    assert on_disk(media_root, video.file.name)


def test_replacing_the_file_removes_the_old_one_after_the_commit(
    local_only, user, media_root, django_capture_on_commit_callbacks
):
    video = services.create_video(owner=user, title="Clip", file=video_upload(size=100))
    old_name = video.file.name

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.update_video(video, file=video_upload("new.mp4", size=200), title="New cut")

    video.refresh_from_db()
    assert len(callbacks) == 1
    assert video.title == "New cut" and video.size_bytes == 200
    assert video.file.name != old_name and on_disk(media_root, video.file.name)
    assert not on_disk(media_root, old_name)


def test_a_rolled_back_replacement_keeps_the_old_file(local_only, user, media_root, django_capture_on_commit_callbacks):
    video = services.create_video(owner=user, title="Clip", file=video_upload())
    old_name = video.file.name

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                services.update_video(video, file=video_upload("new.mp4"))
                raise RuntimeError("the request failed after the save")

    assert callbacks == []
    assert Video.objects.get(pk=video.pk).file.name == old_name
    assert on_disk(media_root, old_name)


@pytest.mark.parametrize("provider", ["local", "s3"])
def test_a_row_the_database_refuses_leaves_no_file_behind(provider, settings, s3_inprocess, user, media_root):
    settings.STORAGE_PROVIDERS = [provider]

    with pytest.raises(DatabaseError), transaction.atomic():
        Video.objects.create(owner=user, title="t" * 201, file=video_upload())  # PostgreSQL: too long

    assert not Video.objects.exists()
    assert files_on(provider, media_root, s3_inprocess) == []


def test_a_new_video_the_database_refuses_leaves_neither_file_nor_poster(local_only, user, media_root, tmp_path):
    clip = uploaded(real_video(tmp_path))  # ffmpeg cuts a poster of it, stored before the row

    with pytest.raises(DatabaseError):
        services.create_video(owner=user, title="t" * 201, file=clip)

    assert not Video.objects.exists()
    assert files_on_disk(media_root) == []


@pytest.mark.parametrize("provider", ["local", "s3"])
def test_a_replacement_the_database_refuses_keeps_only_the_old_file(
    provider, settings, s3_inprocess, user, media_root, refuse_video_rows, django_capture_on_commit_callbacks
):
    settings.STORAGE_PROVIDERS = [provider]
    video = services.create_video(owner=user, title="Clip", file=video_upload())
    name, held = video.file.name, files_on(provider, media_root, s3_inprocess)
    with video.file.open("rb") as stored:
        content = stored.read()
    refuse_video_rows("UPDATE")

    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(DatabaseError, match="refused by the test"):
            services.update_video(Video.objects.get(pk=video.pk), file=video_upload("new.mp4"))

    assert Video.objects.get(pk=video.pk).file.name == name
    assert files_on(provider, media_root, s3_inprocess) == held
    with Video.objects.get(pk=video.pk).file.open("rb") as stored:
        assert sha256(stored.read()) == sha256(content)


def test_metadata_changes_leave_the_files_alone(local_only, user, media_root, django_capture_on_commit_callbacks):
    video = services.create_video(owner=user, title="Clip", file=video_upload())

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.update_video(video, description="Longer text")

    assert callbacks == []
    assert on_disk(media_root, video.file.name)


def test_delete_removes_the_row_then_the_files(local_only, user, media_root, django_capture_on_commit_callbacks):
    video = services.create_video(owner=user, title="Clip", file=video_upload())
    name = video.file.name

    with django_capture_on_commit_callbacks(execute=True):
        services.delete_video(video)

    assert not Video.objects.exists()
    assert not on_disk(media_root, name)


def test_a_rolled_back_delete_keeps_the_row_and_the_files(
    local_only, user, media_root, django_capture_on_commit_callbacks
):
    video = services.create_video(owner=user, title="Clip", file=video_upload())
    pk, name = video.pk, video.file.name
    digest = digest_on_disk(media_root, name)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                services.delete_video(video)
                raise RuntimeError("the request failed after the delete")

    assert callbacks == []
    assert Video.objects.get(pk=pk).file.name == name
    assert digest_on_disk(media_root, name) == digest


def test_a_delete_the_database_refuses_keeps_the_files(
    local_only, user, media_root, refuse_video_rows, django_capture_on_commit_callbacks
):
    video = services.create_video(owner=user, title="Clip", file=video_upload())
    digest = digest_on_disk(media_root, video.file.name)
    refuse_video_rows("DELETE")

    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(DatabaseError, match="refused by the test"):
            services.delete_video(Video.objects.get(pk=video.pk))

    assert Video.objects.filter(pk=video.pk).exists()
    assert digest_on_disk(media_root, video.file.name) == digest


def test_a_failed_removal_is_queued_and_retried(
    settings, s3_inprocess, s3_deletes_fail, user, django_capture_on_commit_callbacks
):
    settings.STORAGE_PROVIDERS = ["s3"]
    video = services.create_video(owner=user, title="Clip", file=video_upload())
    name = video.file.name

    with django_capture_on_commit_callbacks(execute=True):
        services.delete_video(video)

    pending = PendingDeletion.objects.get()
    assert (pending.name, pending.provider, pending.attempts) == (name, "s3", 1)
    assert "S3 is unreachable" in pending.last_error
    assert "aws-secret-for-tests" not in pending.last_error
    assert pending.next_attempt_at > timezone.now() + timedelta(seconds=50)
    assert services.retry_pending_deletions() == (0, 0)  # not due yet

    assert services.retry_pending_deletions(due_only=False) == (0, 1)
    assert PendingDeletion.objects.get().attempts == 2


def test_a_queued_removal_succeeds_once_the_provider_is_back(settings, s3_inprocess, user):
    settings.STORAGE_PROVIDERS = ["s3"]
    name = services.create_video(owner=user, title="Clip", file=video_upload()).file.name
    Video.objects.all().delete()
    PendingDeletion.objects.create(name=name, provider="s3", attempts=1, next_attempt_at=timezone.now())

    assert services.retry_pending_deletions() == (1, 0)

    assert not PendingDeletion.objects.exists()
    assert s3_inprocess.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0


def test_a_queued_file_that_a_video_uses_again_is_kept(local_only, user, media_root):
    video = services.create_video(owner=user, title="Clip", file=video_upload())
    PendingDeletion.objects.create(name=video.file.name, provider="local", next_attempt_at=timezone.now())

    assert services.retry_pending_deletions() == (0, 0)

    assert not PendingDeletion.objects.exists()
    assert on_disk(media_root, video.file.name)


@pytest.fixture
def s3_answer_lost(s3_inprocess):
    """The next S3 PutObject stores its object, then its answer is lost (a read timeout)."""
    from botocore.exceptions import ReadTimeoutError

    events = providers.get_storage("s3").connection.meta.client.meta.events

    def lose_answer(**kwargs):
        events.unregister("after-call.s3.PutObject", lose_answer)
        raise ReadTimeoutError(endpoint_url="https://s3.amazonaws.com")

    events.register("after-call.s3.PutObject", lose_answer)
    yield
    events.unregister("after-call.s3.PutObject", lose_answer)


def test_an_upload_whose_answer_was_lost_queues_the_removal_of_what_may_have_landed(
    settings, s3_inprocess, s3_answer_lost, user, media_root
):
    settings.STORAGE_PROVIDERS = ["s3", "local"]

    video = services.create_video(owner=user, title="Clip", file=video_upload(size=3000))

    assert video.file.name.startswith("local:")
    [key] = files_on("s3", media_root, s3_inprocess)  # S3 took the file; the upload could not know
    pending = PendingDeletion.objects.get()
    assert (pending.name, pending.provider, pending.attempts) == ("s3:" + key.removeprefix("stremora/"), "s3", 0)
    assert "ReadTimeoutError" in pending.last_error
    assert pending.next_attempt_at > timezone.now() + timedelta(seconds=50)  # a slow write lands first

    assert services.retry_pending_deletions(due_only=False) == (1, 0)
    assert files_on("s3", media_root, s3_inprocess) == []
    assert on_disk(media_root, video.file.name)


def backend_pid():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def drop_connection(pid):
    """Terminate the database connection served by ``pid``, as a server restart would."""
    database = django_settings.DATABASES["default"]
    with psycopg.connect(
        host=database["HOST"], port=database["PORT"], user=database["USER"], dbname="postgres", autocommit=True
    ) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone():
            time.sleep(0.01)  # the server ends it a moment later


@pytest.mark.django_db(transaction=True)
def test_an_upload_whose_connection_dropped_while_its_provider_failed_still_queues_the_removal(
    settings, s3_inprocess, user, media_root
):
    from botocore.exceptions import ReadTimeoutError

    settings.STORAGE_PROVIDERS = ["s3", "local"]
    events = providers.get_storage("s3").connection.meta.client.meta.events
    uploading = backend_pid()  # the upload's connection (the PutObject runs in a transfer thread)

    def lose_answer_and_connection(**kwargs):
        drop_connection(uploading)  # idle while the provider did not answer
        raise ReadTimeoutError(endpoint_url="https://s3.amazonaws.com")

    events.register("after-call.s3.PutObject", lose_answer_and_connection)
    try:
        video = services.create_video(owner=user, title="Clip", file=video_upload())
    finally:
        events.unregister("after-call.s3.PutObject", lose_answer_and_connection)

    assert video.file.name.startswith("local:")
    [key] = files_on("s3", media_root, s3_inprocess)
    assert PendingDeletion.objects.get().name == "s3:" + key.removeprefix("stremora/")


@pytest.mark.django_db(transaction=True)
def test_an_upload_whose_connection_dropped_while_its_provider_stored_it_is_on_the_dashboard(
    settings, s3_inprocess, user
):
    settings.STORAGE_PROVIDERS = ["s3", "local"]
    events = providers.get_storage("s3").connection.meta.client.meta.events
    uploading = backend_pid()

    def lose_connection(**kwargs):
        drop_connection(uploading)  # idle while the provider stored the file

    events.register("after-call.s3.PutObject", lose_connection)
    try:
        video = services.create_video(owner=user, title="Clip", file=video_upload())
    finally:
        events.unregister("after-call.s3.PutObject", lose_connection)

    event = StorageEvent.objects.get()
    assert (event.outcome, event.provider, event.name) == ("stored", "s3", video.file.name)


def test_an_upload_cloudinary_failed_queues_a_removal_that_succeeds_on_nothing(
    settings, cloudinary_server, user, media_root
):
    settings.STORAGE_PROVIDERS = ["cloudinary", "local"]
    cloudinary_server.fail("http_500", actions=["upload"], times=1)

    video = services.create_video(owner=user, title="Clip", file=video_upload())

    assert video.file.name.startswith("local:")
    pending = PendingDeletion.objects.get()
    assert pending.name == "cloudinary:" + video.file.name.removeprefix("local:")
    assert services.retry_pending_deletions(due_only=False) == (1, 0)  # Cloudinary had nothing: "not found"
    assert cloudinary_server.resources() == {}


def test_a_copy_for_a_move_whose_answer_was_lost_queues_no_removal(db, s3_inprocess, s3_answer_lost):
    # A move keeps its file's key, and its retry writes that key again: a queued
    # removal could then take the copy the video uses. The move cleans up itself.
    with pytest.raises(StorageUnavailable):
        default_storage.save_on("s3", "videos/2026/11/clip_moved.mp4", video_upload())

    assert not PendingDeletion.objects.exists()


def test_retry_delays_double_up_to_a_day():
    assert [services.retry_delay(attempts).total_seconds() for attempts in (1, 2, 3)] == [60, 120, 240]
    assert services.retry_delay(30) == timedelta(days=1)


def test_move_copies_checks_switches_and_then_removes_the_old_file(
    settings, s3_inprocess, user, media_root, django_capture_on_commit_callbacks
):
    settings.STORAGE_PROVIDERS = ["local"]
    upload = video_upload(size=4321)
    video = services.create_video(owner=user, title="Clip", file=upload)
    old_name = video.file.name
    settings.STORAGE_PROVIDERS = ["s3", "local"]

    with django_capture_on_commit_callbacks(execute=True):
        assert services.move_video(video, "s3") is True

    assert video.storage_provider == "s3"
    assert video.file.name == "s3:" + old_name.removeprefix("local:")  # the key stays
    body = s3_inprocess.get_object(Bucket=BUCKET, Key="stremora/" + old_name.removeprefix("local:"))["Body"].read()
    assert sha256(body) == sha256(upload.body)
    assert not on_disk(media_root, old_name)
    assert services.move_video(video, "s3") is False  # already there


def test_a_failed_move_leaves_the_video_as_it_was(settings, s3_inprocess, user, media_root):
    settings.STORAGE_PROVIDERS = ["local"]
    video = services.create_video(owner=user, title="Clip", file=video_upload())
    name = video.file.name
    events = providers.get_storage("s3").connection.meta.client.meta.events

    def refuse(**kwargs):
        raise ConnectionError("S3 is unreachable")

    events.register("before-send.s3", refuse)
    try:
        with pytest.raises(StorageUnavailable):
            services.move_video(video, "s3")
    finally:
        events.unregister("before-send.s3", refuse)

    video.refresh_from_db()
    assert (video.storage_provider, video.file.name) == ("local", name)
    assert on_disk(media_root, name)
    assert s3_inprocess.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0


@pytest.mark.django_db(transaction=True)
def test_a_video_being_moved_is_skipped_by_another_mover(settings, s3_inprocess, user):
    import threading

    from django.db import connection

    settings.STORAGE_PROVIDERS = ["local"]
    video = services.create_video(owner=user, title="Clip", file=video_upload())
    locked, release = threading.Event(), threading.Event()

    def hold_the_row():
        with transaction.atomic():
            Video.objects.select_for_update().get(pk=video.pk)
            locked.set()
            release.wait(10)
        connection.close()

    holder = threading.Thread(target=hold_the_row)
    holder.start()
    locked.wait(10)
    try:
        assert services.move_video(video, "s3") is False
    finally:
        release.set()
        holder.join()
    assert Video.objects.get(pk=video.pk).storage_provider == "local"


def test_a_copy_that_does_not_match_is_removed_and_the_move_fails(settings, s3_inprocess, user, media_root, monkeypatch):
    from storage_backends.chain import FallbackStorage

    settings.STORAGE_PROVIDERS = ["local"]
    video = services.create_video(owner=user, title="Clip", file=video_upload())
    name = video.file.name
    # The copy arrives altered: its provider's checksum is not the source's.
    monkeypatch.setattr(FallbackStorage, "md5", lambda self, stored_name: "0" * 32)

    with pytest.raises(services.MoveError, match="does not match"):
        services.move_video(video, "s3")

    video.refresh_from_db()
    assert (video.storage_provider, video.file.name) == ("local", name)
    assert s3_inprocess.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0


def test_each_provider_gives_the_md5_of_what_it_holds(settings, s3_inprocess, cloudinary_server, user):
    import hashlib

    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    body = b"some video bytes"
    for provider in ("cloudinary", "s3", "local"):
        name = default_storage.save_on(provider, f"videos/{provider}_AbCdEf1.mp4", ContentFile(body))
        assert default_storage.md5(name) == hashlib.md5(body).hexdigest(), provider
