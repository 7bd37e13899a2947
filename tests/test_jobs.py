"""The background jobs (videos/jobs.py) in this process, against PostgreSQL.

Without a broker every job runs inline, as before. With one (``queued_jobs``) jobs go
to Celery's in-memory transport, and the test then runs what waits there the way a
worker would (``Task.apply``: retries and failure handlers included). Real workers on
a real Redis are tested in tests/test_worker*.py.
"""

import contextlib
import io
import logging
import os
import socket
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import connections, transaction
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from storage_backends import providers
from stremora.celery import app as celery_app
from stremora.config import ConfigError, load_config
from tests.factories import real_video, sha256, uploaded, video_bytes, video_upload
from videos import jobs, probe, services
from videos.models import PendingDeletion, UploadSession, Video

# Real commits, as in production: jobs are sent once the transaction that asks commits.
pytestmark = pytest.mark.django_db(transaction=True)

BUCKET = "stremora-test"
ROOT = Path(__file__).resolve().parent.parent


class MemoryQueue:
    """The broker of ``queued_jobs``: what waits in Celery's in-memory transport."""

    def take(self):
        """Every job waiting, as ``(name, args)``, taken off the queue."""
        taken = []
        with celery_app.connection_for_read() as connection:
            queue = connection.SimpleQueue(celery_app.conf.task_default_queue)
            try:
                while True:
                    message = queue.get(block=False)
                    taken.append((message.headers["task"], tuple(message.payload[0])))
                    message.ack()
            except queue.Empty:
                pass
            finally:
                queue.close()
        return taken

    def run_all(self):
        """Run what waits, as a worker would, until nothing waits; returns what ran."""
        ran = []
        while waiting := self.take():
            for name, args in waiting:
                celery_app.tasks[name].apply(args)
                ran.append((name, args))
        return ran


@pytest.fixture
def queued_jobs(settings):
    """A broker is configured: jobs are queued for workers instead of run inline."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    queue = MemoryQueue()
    queue.take()  # nothing left over from another test
    yield queue
    queue.take()


def forget_broker_connections():
    """Connect to CELERY_BROKER_URL as it is now (Celery keeps its first connection pool)."""
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.fixture
def broker_down(settings):
    """The broker is configured but does not answer: nothing listens on its port."""
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        port = probe_socket.getsockname()[1]
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = f"redis://:broker-password-for-tests@127.0.0.1:{port}/0"
    forget_broker_connections()
    yield
    settings.CELERY_BROKER_URL = "memory://"
    forget_broker_connections()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return real_video(tmp_path_factory.mktemp("clips"), seconds=2)


@pytest.fixture(scope="module")
def longer_clip(tmp_path_factory):
    return real_video(tmp_path_factory.mktemp("clips"), name="longer.mp4", seconds=4)


@pytest.fixture
def local_only(settings, media_root):
    settings.STORAGE_PROVIDERS = ["local"]


def client_for(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def files_under(root):
    return sorted(str(path.relative_to(root)) for path in Path(root).rglob("*") if path.is_file())


def local_path(media_root, name):
    return Path(media_root) / name.removeprefix("local:")


def s3_keys(client):
    return [item["Key"] for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])]


@contextlib.contextmanager
def s3_refusing_uploads():
    """Within the block, every PutObject to S3 fails with "S3 went away"."""

    def refuse(**kwargs):
        raise ConnectionError("S3 went away")

    events = providers.get_storage("s3").connection.meta.client.meta.events
    events.register("before-send.s3.PutObject", refuse)
    try:
        yield
    finally:
        events.unregister("before-send.s3.PutObject", refuse)


def counting(monkeypatch, module, name):
    """Wrap ``module.name`` to count its calls; the calls still happen."""
    calls = []
    original = getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


# -- processing after an upload ------------------------------------------------


def test_without_a_broker_the_upload_answers_with_its_duration_and_poster(user, local_only, clip):
    response = client_for(user).post("/api/videos/", {"title": "Clip", "file": uploaded(clip)}, format="multipart")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["processing"] == "done"
    assert body["duration_seconds"] == pytest.approx(2.0, abs=0.1)
    assert body["thumbnail_url"]


def test_with_a_broker_the_upload_answers_once_stored_and_a_job_cuts_duration_and_poster(
    user, local_only, clip, queued_jobs, media_root
):
    api = client_for(user)

    response = api.post("/api/videos/", {"title": "Clip", "file": uploaded(clip)}, format="multipart")

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["processing"], body["duration_seconds"], body["thumbnail_url"]) == ("pending", None, None)
    assert local_path(media_root, Video.objects.get().file.name).read_bytes() == clip.read_bytes()  # stored already
    assert queued_jobs.run_all() == [("videos.jobs.process_upload", (body["id"],))]

    body = api.get(f"/api/videos/{body['id']}/").json()
    assert body["processing"] == "done"
    assert body["duration_seconds"] == pytest.approx(2.0, abs=0.1)
    assert body["thumbnail_url"]
    assert Video.objects.get().thumbnail.name.startswith("local:thumbnails/")


def test_processing_twice_does_nothing_the_second_time(user, local_only, clip, queued_jobs, media_root, monkeypatch):
    video = services.create_video(owner=user, title="Clip", file=uploaded(clip))
    queued_jobs.run_all()
    video.refresh_from_db()
    files, thumbnail = files_under(media_root), video.thumbnail.name
    inspections = counting(monkeypatch, probe, "inspect")

    jobs.process_upload.apply((video.pk,))  # delivered again, after a worker died say

    video.refresh_from_db()
    assert inspections == []
    assert (video.processing, video.thumbnail.name) == ("done", thumbnail)
    assert files_under(media_root) == files


def test_a_file_replaced_during_processing_is_processed_for_the_new_file(
    user, local_only, clip, longer_clip, queued_jobs, media_root, monkeypatch
):
    video = services.create_video(owner=user, title="Clip", file=uploaded(clip))
    inspect = probe.inspect
    replaced = []

    def inspect_while_the_file_is_replaced(source, **kwargs):
        info = inspect(source, **kwargs)
        if not replaced:  # the editor uploads another file while the first is probed
            replaced.append(services.update_video(Video.objects.get(pk=video.pk), file=uploaded(longer_clip)))
        return info

    monkeypatch.setattr(probe, "inspect", inspect_while_the_file_is_replaced)

    ran = queued_jobs.run_all()

    video.refresh_from_db()
    assert [name for name, _ in ran] == ["videos.jobs.process_upload"] * 2
    assert video.file.name == replaced[0].file.name
    assert video.processing == "done"
    assert video.duration_seconds == pytest.approx(4.0, abs=0.1)
    # One poster, of the new file: the one cut from the old file was removed.
    posters = [name for name in files_under(media_root) if name.startswith("thumbnails/")]
    assert posters == [video.thumbnail.name.removeprefix("local:")]


def test_a_video_deleted_as_its_poster_is_recorded_leaves_no_poster_behind(
    user, local_only, clip, queued_jobs, media_root
):
    video = services.create_video(owner=user, title="Clip", file=uploaded(clip))
    as_the_request_loaded_it = Video.objects.get(pk=video.pk)  # a DELETE's view, before the job ends
    queued_jobs.run_all()
    assert Video.objects.get(pk=video.pk).thumbnail.name.startswith("local:thumbnails/")

    services.delete_video(as_the_request_loaded_it)

    assert not Video.objects.exists()
    assert files_under(media_root) == []


def wait_until_done_or_waiting_for_a_lock(thread, timeout=30):
    deadline = time.monotonic() + timeout
    while thread.is_alive() and time.monotonic() < deadline:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT pg_stat_clear_snapshot()")  # else a transaction sees its first snapshot
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return
        time.sleep(0.05)


def test_a_file_replaced_as_its_poster_is_recorded_leaves_no_poster_behind(
    user, local_only, clip, longer_clip, queued_jobs, media_root, monkeypatch
):
    video = services.create_video(owner=user, title="Clip", file=uploaded(clip))
    [(_, first_job)] = queued_jobs.take()
    replaced_names = services._replaced_names
    recorders = []

    def replaced_names_then_the_job_records(video):
        names = replaced_names(video)  # the replacement knows what the row held
        recorder = threading.Thread(target=lambda: (jobs.process_upload.apply(first_job), connections.close_all()))
        recorder.start()
        recorders.append(recorder)
        wait_until_done_or_waiting_for_a_lock(recorder)
        return names

    monkeypatch.setattr(services, "_replaced_names", replaced_names_then_the_job_records)
    services.update_video(Video.objects.get(pk=video.pk), file=uploaded(longer_clip))
    recorders[0].join(30)
    queued_jobs.run_all()  # the new file's job

    video.refresh_from_db()
    assert video.duration_seconds == pytest.approx(4.0, abs=0.1)
    # The new file and its poster: the one cut from the old file was removed.
    assert files_under(media_root) == sorted(
        name.removeprefix("local:") for name in (video.file.name, video.thumbnail.name)
    )


def test_processing_that_keeps_failing_stops_after_its_retries_and_says_why(
    user, local_only, clip, queued_jobs, media_root, monkeypatch
):
    video = services.create_video(owner=user, title="Clip", file=uploaded(clip))
    # The poster cannot be written: a file stands where its folder should be.
    Path(media_root).mkdir(parents=True, exist_ok=True)
    (Path(media_root) / "thumbnails").write_bytes(b"in the way")
    runs = counting(monkeypatch, services, "process_upload")

    queued_jobs.run_all()

    video.refresh_from_db()
    assert len(runs) == jobs.RETRIES + 1
    assert video.processing == "failed"
    assert video.processing_error.startswith("StorageUnavailable: No storage provider could store the file (local:")
    assert video.duration_seconds is None
    assert local_path(media_root, video.file.name).read_bytes() == clip.read_bytes()  # still plays
    body = client_for(user).get(f"/api/videos/{video.pk}/").json()
    assert body["processing"] == "failed"


def test_pending_processing_whose_job_was_lost_is_asked_for_again(user, local_only, clip, queued_jobs):
    video = services.create_video(owner=user, title="Clip", file=uploaded(clip))
    queued_jobs.take()  # the job is lost
    jobs.process_pending_uploads.apply()
    assert queued_jobs.take() == []  # too recent: its job may still be waiting

    Video.objects.filter(pk=video.pk).update(updated_at=timezone.now() - timedelta(minutes=11))
    jobs.process_pending_uploads.apply()

    assert queued_jobs.run_all() == [("videos.jobs.process_upload", (video.pk,))]
    video.refresh_from_db()
    assert video.processing == "done" and video.duration_seconds == pytest.approx(2.0, abs=0.1)


# -- moves -----------------------------------------------------------------------


@pytest.fixture
def admin_client(client, staff_user):
    client.force_login(staff_user)
    return client


def create_on(settings, provider, owner, title):
    chain = settings.STORAGE_PROVIDERS
    settings.STORAGE_PROVIDERS = [provider]
    try:
        return services.create_video(owner=owner, title=title, file=video_upload())
    finally:
        settings.STORAGE_PROVIDERS = chain


def changelist(admin_client):
    return admin_client.get(reverse("admin:videos_video_changelist")).content.decode()


def test_the_move_action_queues_a_job_per_video_and_the_admin_shows_how_each_stands(
    admin_client, staff_user, settings, s3_inprocess, media_root, queued_jobs
):
    settings.STORAGE_PROVIDERS = ["local"]
    first, second = (create_on(settings, "local", staff_user, title) for title in ("First", "Second"))
    there = create_on(settings, "s3", staff_user, "There already")
    queued_jobs.run_all()  # their processing
    contents = {video.pk: local_path(media_root, video.file.name).read_bytes() for video in (first, second)}

    response = admin_client.post(
        reverse("admin:videos_video_changelist"),
        {"action": "move_to_s3", "_selected_action": [first.pk, second.pk, there.pk]},
        follow=True,
    )

    assert [str(message) for message in response.context["messages"]] == [
        "Queued 2 video(s) for a move to Amazon S3.",
        "1 video(s) already on Amazon S3: nothing to move.",
    ]
    assert s3_keys(s3_inprocess) == ["stremora/" + there.file.name.removeprefix("s3:")]  # nothing moved yet
    assert changelist(admin_client).count("Queued to Amazon S3") == 2
    assert Video.objects.get(pk=there.pk).move_status == ""

    ran = queued_jobs.run_all()

    assert sorted(ran) == sorted([("videos.jobs.move_video", (first.pk, "s3")), ("videos.jobs.move_video", (second.pk, "s3"))])
    for video in (first, second):
        video.refresh_from_db()
        assert (video.storage_provider, video.move_status, video.move_target) == ("s3", "done", "s3")
        with video.file.open("rb") as moved:
            assert sha256(moved.read()) == sha256(contents[video.pk])
    assert changelist(admin_client).count("Done to Amazon S3") == 2
    page = admin_client.get(reverse("admin:videos_video_change", args=[first.pk])).content.decode()
    assert "Done to Amazon S3" in page


def test_without_a_broker_the_move_runs_at_once_and_a_video_already_there_is_said_so(
    admin_client, staff_user, settings, media_root
):
    settings.STORAGE_PROVIDERS = ["local"]
    video = create_on(settings, "local", staff_user, "Here")

    response = admin_client.post(
        reverse("admin:videos_video_changelist"),
        {"action": "move_to_local", "_selected_action": [video.pk]},
        follow=True,
    )

    assert [str(message) for message in response.context["messages"]] == [
        "1 video(s) already on Local disk: nothing to move."
    ]


def test_a_move_that_keeps_failing_stops_after_its_retries_and_the_admin_shows_why(
    admin_client, staff_user, settings, s3_inprocess, media_root, queued_jobs, monkeypatch
):
    settings.STORAGE_PROVIDERS = ["local"]
    video = create_on(settings, "local", staff_user, "Stuck")
    original = local_path(media_root, video.file.name).read_bytes()

    attempts = counting(monkeypatch, services, "run_move")
    with s3_refusing_uploads():
        services.queue_moves([video], "s3")
        queued_jobs.run_all()

    video.refresh_from_db()
    assert len(attempts) == jobs.RETRIES + 1
    assert (video.move_status, video.storage_provider) == ("failed", "local")
    assert video.move_detail.startswith("StorageUnavailable: No storage provider could store the file (s3:")
    assert "S3 went away" in video.move_detail
    assert django_settings.AWS_SECRET_ACCESS_KEY not in video.move_detail
    assert local_path(media_root, video.file.name).read_bytes() == original  # still plays
    assert s3_keys(s3_inprocess) == []
    page = changelist(admin_client)
    assert "Failed to Amazon S3" in page and "S3 went away" in page


def test_without_a_broker_a_failing_move_is_tried_once_and_the_action_says_why(
    admin_client, staff_user, settings, s3_inprocess, media_root, monkeypatch
):
    settings.STORAGE_PROVIDERS = ["local"]
    video = create_on(settings, "local", staff_user, "Stuck")

    attempts = counting(monkeypatch, services, "run_move")
    with s3_refusing_uploads():
        response = admin_client.post(
            reverse("admin:videos_video_changelist"),
            {"action": "move_to_s3", "_selected_action": [video.pk]},
            follow=True,
        )

    assert len(attempts) == 1  # the request waits: no retries inside it
    [message] = [str(message) for message in response.context["messages"]]
    assert message.startswith("Stuck: not moved to Amazon S3: StorageUnavailable: No storage provider could store")
    assert "S3 went away" in message
    video.refresh_from_db()
    assert (video.move_status, video.storage_provider) == ("failed", "local")


def test_a_move_that_cannot_succeed_fails_at_once(staff_user, settings, s3_inprocess, media_root, queued_jobs, monkeypatch):
    settings.STORAGE_PROVIDERS = ["local"]
    video = create_on(settings, "local", staff_user, "Gone")
    local_path(media_root, video.file.name).unlink()
    attempts = counting(monkeypatch, services, "run_move")

    services.queue_moves([video], "s3")
    queued_jobs.run_all()

    video.refresh_from_db()
    assert len(attempts) == 1
    assert video.move_status == "failed" and video.move_detail.startswith("FileNotFoundError")


def test_a_video_another_mover_holds_is_left_to_it_without_waiting(
    staff_user, settings, s3_inprocess, media_root, queued_jobs
):
    settings.STORAGE_PROVIDERS = ["local"]
    video = create_on(settings, "local", staff_user, "Busy")
    queued_jobs.run_all()  # its processing
    services.queue_moves([video], "s3")
    locked, release = threading.Event(), threading.Event()

    def hold_the_row_as_a_mover_does():
        with transaction.atomic():
            Video.objects.select_for_update().get(pk=video.pk)
            locked.set()
            release.wait(30)
        connections.close_all()

    holder = threading.Thread(target=hold_the_row_as_a_mover_does)
    holder.start()
    try:
        assert locked.wait(10)
        started = time.monotonic()
        queued_jobs.run_all()
        took = time.monotonic() - started
    finally:
        release.set()
        holder.join()

    assert took < 10  # every attempt skipped the locked row instead of waiting for it
    video.refresh_from_db()
    assert (video.storage_provider, video.move_status) == ("local", "queued")
    assert s3_keys(s3_inprocess) == []

    jobs.move_video.apply((video.pk, "s3"))  # asked again once the other mover is done

    video.refresh_from_db()
    assert (video.storage_provider, video.move_status) == ("s3", "done")


def test_migrate_storage_queue_hands_each_video_to_the_queue(staff_user, settings, s3_inprocess, media_root, queued_jobs):
    settings.STORAGE_PROVIDERS = ["local"]
    videos = [create_on(settings, "local", staff_user, f"Clip {number}") for number in range(3)]
    queued_jobs.run_all()  # their processing

    output = io.StringIO()
    call_command("migrate_storage", "--to", "s3", "--queue", stdout=output)

    assert output.getvalue().strip().endswith("3 queued for a move to s3, 0 already there, 0 not queued")
    assert s3_keys(s3_inprocess) == []
    assert {video.move_status for video in Video.objects.all()} == {"queued"}
    assert sorted(queued_jobs.run_all()) == [("videos.jobs.move_video", (video.pk, "s3")) for video in videos]
    assert {video.storage_provider for video in Video.objects.all()} == {"s3"}


def test_migrate_storage_queue_without_a_job_queue_says_the_moves_ran_here(staff_user, settings, s3_inprocess, media_root):
    settings.STORAGE_PROVIDERS = ["local"]
    for number in range(2):
        create_on(settings, "local", staff_user, f"Clip {number}")

    output = io.StringIO()
    call_command("migrate_storage", "--to", "s3", "--queue", stdout=output)

    assert output.getvalue().strip().endswith(
        "0 queued for a move to s3, 0 already there, 0 not queued, 2 moved here, 0 failed "
        "(no job queue: CELERY_BROKER_URL is unset)"
    )
    assert {video.storage_provider for video in Video.objects.all()} == {"s3"}
    assert len(s3_keys(s3_inprocess)) == 2


# -- a broker that does not answer -------------------------------------------------


def test_with_the_broker_down_the_move_action_answers_and_says_nothing_was_queued(
    admin_client, staff_user, settings, s3_inprocess, media_root, broker_down
):
    settings.STORAGE_PROVIDERS = ["local"]
    video = create_on(settings, "local", staff_user, "Clip")

    asked = time.monotonic()
    response = admin_client.post(
        reverse("admin:videos_video_changelist"),
        {"action": "move_to_s3", "_selected_action": [video.pk]},
        follow=True,
    )

    assert time.monotonic() - asked < 10  # two quick retries of the connection, then the answer
    assert response.status_code == 200
    [message] = [str(message) for message in response.context["messages"]]
    assert message.startswith("Clip: not moved to Amazon S3: Could not queue the move: the job queue did not answer (")
    assert "broker-password-for-tests" not in message
    video.refresh_from_db()
    assert (video.move_status, video.storage_provider) == ("failed", "local")


def test_with_the_broker_down_an_upload_is_stored_and_processed_once_the_queue_is_back(
    user, local_only, clip, settings, broker_down, caplog
):
    response = client_for(user).post("/api/videos/", {"title": "Clip", "file": uploaded(clip)}, format="multipart")

    assert response.status_code == 201, response.content
    assert response.json()["processing"] == "pending"
    assert "Could not queue the job process_upload" in caplog.text
    assert "broker-password-for-tests" not in caplog.text

    settings.CELERY_TASK_ALWAYS_EAGER = True  # the queue is back (inline here)
    Video.objects.update(updated_at=timezone.now() - timedelta(minutes=11))
    jobs.process_pending_uploads.apply()

    video = Video.objects.get()
    assert video.processing == "done" and video.duration_seconds == pytest.approx(2.0, abs=0.1)


def test_with_the_broker_down_a_background_completion_says_so_and_can_be_asked_again(
    user, local_only, settings, broker_down
):
    api = client_for(user)
    data = video_bytes(50_000)
    upload = api.post("/api/uploads/", {"filename": "clip.mp4", "size": len(data), "content_type": "video/mp4"}, format="json").json()
    api.put(
        f"/api/uploads/{upload['id']}/content", data, content_type="application/octet-stream",
        HTTP_CONTENT_RANGE=f"bytes 0-{len(data) - 1}/{len(data)}",
    )

    response = api.post(
        f"/api/uploads/{upload['id']}/complete/", {"title": "Direct"}, format="json", HTTP_PREFER="respond-async"
    )

    assert response.status_code == 202
    assert response.json()["status"] == "uploading"
    assert response.json()["error"]["status"] == 503
    settings.CELERY_TASK_ALWAYS_EAGER = True  # the queue is back (inline here)
    response = api.post(f"/api/uploads/{upload['id']}/complete/", {"title": "Direct"}, format="json")
    assert response.status_code == 201, response.content


# -- direct uploads completed by a worker ------------------------------------------


def test_a_direct_upload_is_completed_by_a_job_and_completing_it_again_changes_nothing(
    user, local_only, settings, queued_jobs, media_root
):
    api = client_for(user)
    data = video_bytes(50_000)
    upload = api.post("/api/uploads/", {"filename": "clip.mp4", "size": len(data), "content_type": "video/mp4"}, format="json").json()
    api.put(
        f"/api/uploads/{upload['id']}/content", data, content_type="application/octet-stream",
        HTTP_CONTENT_RANGE=f"bytes 0-{len(data) - 1}/{len(data)}",
    )

    response = api.post(
        f"/api/uploads/{upload['id']}/complete/", {"title": "Direct"}, format="json", HTTP_PREFER="respond-async"
    )

    assert response.status_code == 202 and response.json()["status"] == "completing"
    assert queued_jobs.take() == [("videos.jobs.complete_upload", (upload["id"],))]
    jobs.complete_upload.apply((upload["id"],))
    jobs.complete_upload.apply((upload["id"],))  # delivered twice
    assert [name for name, _ in queued_jobs.run_all()] == ["videos.jobs.process_upload"]

    answer = api.get(f"/api/uploads/{upload['id']}/").json()
    assert answer["status"] == "completed"
    video = Video.objects.get()
    assert answer["video"] == video.pk and video.processing == "done"
    assert sha256(local_path(media_root, video.file.name).read_bytes()) == sha256(data)


# -- periodic jobs -------------------------------------------------------------------


def test_beat_schedules_the_periodic_jobs_at_their_intervals():
    celery_app.loader.import_default_modules()
    schedule = {entry["task"]: entry["schedule"] for entry in django_settings.CELERY_BEAT_SCHEDULE.values()}

    assert schedule == {
        "videos.jobs.retry_deletions": timedelta(minutes=10),
        "videos.jobs.process_pending_uploads": timedelta(minutes=10),
        "videos.jobs.sweep_expired_uploads": timedelta(hours=1),
        "videos.jobs.cleanup_orphans": timedelta(days=1),
        "videos.jobs.verify_files": timedelta(days=1),
    }
    assert set(schedule) <= set(celery_app.tasks)


def test_jobs_are_acknowledged_late_and_given_back_when_their_worker_dies():
    conf = celery_app.conf
    assert (conf.task_acks_late, conf.task_reject_on_worker_lost, conf.worker_prefetch_multiplier) == (True, True, 1)
    assert (conf.task_serializer, conf.accept_content) == ("json", ["json"])
    assert conf.broker_transport_options["visibility_timeout"] == 60 * 60


def old_orphan(media_root, name="videos/2020/01/orphan.mp4"):
    path = Path(media_root) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"nobody uses me")
    two_days_ago = time.time() - 2 * 24 * 60 * 60
    os.utime(path, (two_days_ago, two_days_ago))
    return path


def test_the_daily_orphan_sweep_only_reports_unless_deleting_is_on(local_only, settings, media_root, caplog):
    caplog.set_level(logging.INFO, logger="videos.jobs")
    orphan = old_orphan(media_root)

    jobs.cleanup_orphans.apply()

    assert orphan.exists()
    assert "1 orphans (14\xa0bytes), none deleted (dry run; use --delete)" in caplog.text

    settings.STORAGE_CLEANUP_DELETE = True
    jobs.cleanup_orphans.apply()

    assert not orphan.exists()


def test_the_daily_verification_reports_missing_files(user, local_only, media_root, caplog):
    video = services.create_video(owner=user, title="Lost", file=video_upload())
    local_path(media_root, video.file.name).unlink()

    jobs.verify_files.apply()

    assert "check_storage found problems: 3 providers checked" in caplog.text
    assert f"Missing: video {video.pk} (Lost): {video.file.name}" in caplog.text


def test_the_periodic_retry_removes_queued_deletions_that_are_due(local_only, media_root):
    path = old_orphan(media_root, "videos/2020/01/leftover.mp4")
    PendingDeletion.objects.create(
        name="local:videos/2020/01/leftover.mp4", provider="local", next_attempt_at=timezone.now()
    )

    jobs.retry_deletions.apply()

    assert not path.exists() and not PendingDeletion.objects.exists()


def test_the_hourly_sweep_expires_abandoned_direct_uploads(user, local_only, media_root):
    api = client_for(user)
    upload = api.post("/api/uploads/", {"filename": "clip.mp4", "size": 1000, "content_type": "video/mp4"}, format="json").json()
    api.put(
        f"/api/uploads/{upload['id']}/content", video_bytes(1000)[:500], content_type="application/octet-stream",
        HTTP_CONTENT_RANGE="bytes 0-499/1000",
    )
    UploadSession.objects.filter(pk=upload["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))

    jobs.sweep_expired_uploads.apply()

    assert UploadSession.objects.get(pk=upload["id"]).status == "expired"
    assert files_under(media_root) == []


# -- settings --------------------------------------------------------------------------


def test_the_broker_url_must_be_redis_and_is_never_echoed(tmp_path):
    base = {"SECRET_KEY": "x"}
    assert load_config(base, tmp_path).celery_broker_url is None
    assert load_config({**base, "CELERY_BROKER_URL": "redis://localhost:6379/1"}, tmp_path).celery_broker_url == (
        "redis://localhost:6379/1"
    )
    with pytest.raises(ConfigError) as excinfo:
        load_config({**base, "CELERY_BROKER_URL": "amqp://guest:hunter2@rabbit//"}, tmp_path)
    assert "CELERY_BROKER_URL" in str(excinfo.value) and "hunter2" not in str(excinfo.value)
    assert load_config({**base, "STORAGE_CLEANUP_DELETE": "on"}, tmp_path).storage_cleanup_delete is True
    assert load_config(base, tmp_path).storage_cleanup_delete is False


def test_a_stored_file_that_cannot_be_read_is_processed_again_not_marked_done_without_details(
    user, settings, s3_server, clip, queued_jobs, monkeypatch
):
    settings.STORAGE_PROVIDERS = ["s3"]
    video = services.create_video(owner=user, title="Clip", file=uploaded(clip))
    key = "stremora/" + video.file.name.removeprefix("s3:")
    s3 = s3_server.client()
    held = s3.get_object(Bucket="stremora-test", Key=key)["Body"].read()
    s3.delete_object(Bucket="stremora-test", Key=key)  # its URL answers 404 for a while
    runs = counting(monkeypatch, services, "process_upload")

    queued_jobs.run_all()

    video.refresh_from_db()
    assert len(runs) == jobs.RETRIES + 1  # each read failed: tried again, not done without details
    assert video.processing == "failed" and video.duration_seconds is None
    assert video.processing_error.startswith("ReadFailed: Could not inspect clip")
    assert "X-Amz-Signature" not in video.processing_error

    s3.put_object(Bucket="stremora-test", Key=key, Body=held)  # readable again
    Video.objects.filter(pk=video.pk).update(processing="pending")
    services.process_upload(video.pk)

    video.refresh_from_db()
    assert video.processing == "done" and 1.5 < video.duration_seconds < 2.5 and video.thumbnail


def test_retries_wait_the_whole_backoff_so_they_outlast_a_short_outage(
    staff_user, settings, s3_inprocess, media_root, queued_jobs, monkeypatch
):
    settings.STORAGE_PROVIDERS = ["local"]
    video = create_on(settings, "local", staff_user, "Stuck")
    waits = []
    retry = jobs.move_video.retry

    def recorded_retry(*args, **kwargs):
        waits.append(kwargs.get("countdown"))
        return retry(*args, **kwargs)

    monkeypatch.setattr(jobs.move_video, "retry", recorded_retry)

    def refuse(**kwargs):
        raise ConnectionError("S3 went away")

    s3_client = providers.get_storage("s3").connection.meta.client
    s3_client.meta.events.register("before-send.s3.PutObject", refuse)
    try:
        services.queue_moves([video], "s3")
        queued_jobs.run_all()
    finally:
        s3_client.meta.events.unregister("before-send.s3.PutObject", refuse)

    # The last call finds the retries spent and gives up.
    assert waits[: jobs.RETRIES] == [jobs.RETRY_BACKOFF, 2 * jobs.RETRY_BACKOFF, 4 * jobs.RETRY_BACKOFF]
