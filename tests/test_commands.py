"""The housekeeping commands against moto's S3 server, the Cloudinary test server and PostgreSQL."""

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone as django_timezone

from storage_backends import providers
from tests.factories import sha256, video_upload
from tests.fault_proxy import FaultProxy
from tests.stack import database_url
from videos import services
from videos.management.quiet import quiet_http_libraries
from videos.models import PendingDeletion, Video

# Real commits, as in production: files are removed only after one.
pytestmark = pytest.mark.django_db(transaction=True)

BUCKET = "stremora-test"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def every_provider(settings, cloudinary_server, s3_server, media_root):
    settings.STORAGE_PROVIDERS = ["cloudinary", "s3", "local"]
    return settings


@pytest.fixture
def s3_proxy(every_provider, s3_server):
    """S3 reached through the fault proxy, for refused or hanging connections."""
    with FaultProxy("127.0.0.1", s3_server.port) as proxy:
        every_provider.AWS_S3_ENDPOINT_URL = proxy.url
        yield proxy


def run(*args):
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def run_failing(*args):
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError) as excinfo:
        call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue(), str(excinfo.value)


def create_on(settings, provider, user, title="Clip", size=2000):
    chain = settings.STORAGE_PROVIDERS
    settings.STORAGE_PROVIDERS = [provider]
    try:
        return services.create_video(owner=user, title=title, file=video_upload(size=size))
    finally:
        settings.STORAGE_PROVIDERS = chain


def where_files_are(cloudinary_server, s3_server, media_root):
    """Every object each provider holds, as qualified names."""
    cloudinary = providers.get_storage("cloudinary")
    names = {f"cloudinary:{cloudinary.name_of(record)}" for record in cloudinary_server.resources().values()}
    names |= {"s3:" + key.removeprefix("stremora/") for key in s3_server.keys(BUCKET)}
    if media_root.exists():
        names |= {"local:" + path.relative_to(media_root).as_posix() for path in media_root.rglob("*") if path.is_file()}
    return names


def referenced():
    return {name for pair in Video.objects.values_list("file", "thumbnail") for name in pair if name}


def stored_digest(video):
    """The sha256 of the video's file as its provider holds it."""
    with video.file.open("rb") as stored:
        return sha256(stored.read())


# -- check_storage -------------------------------------------------------------


def test_check_storage_reports_every_provider_healthy(every_provider):
    out, _ = run("check_storage")

    lines = out.splitlines()
    assert lines[0].split() == ["provider", "in", "chain", "configured", "reachable", "detail"]
    assert [line.split()[:4] for line in lines[1:4]] == [[name, "yes", "yes", "yes"] for name in ("cloudinary", "s3", "local")]
    assert lines[-1] == "3 providers checked, 0 with problems"


def test_check_storage_fails_on_bad_credentials_or_a_missing_bucket(every_provider, settings):
    settings.CLOUDINARY_API_SECRET = "wrong-secret"
    settings.AWS_S3_BUCKET_NAME = "no-such-bucket"

    out, _, error = run_failing("check_storage")

    assert "cloudinary  yes       yes         NO         AuthorizationRequired" in out
    assert "s3          yes       yes         NO         ClientError" in out
    assert error == "3 providers checked, 2 with problems: cloudinary; s3"
    assert "wrong-secret" not in out + error


def test_check_storage_fails_when_the_chain_has_nothing_that_works(settings, tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("")
    settings.MEDIA_ROOT = blocked
    settings.STORAGE_PROVIDERS = ["local"]

    _, _, error = run_failing("check_storage")

    assert error.endswith("local; no provider in the chain can store files")


def test_check_storage_counts_the_providers_that_failed_not_the_chain(every_provider, cloudinary_server, s3_proxy):
    every_provider.STORAGE_PROVIDERS = ["cloudinary", "s3"]
    cloudinary_server.fail("refuse")
    s3_proxy.set_mode("refuse")

    out, _, error = run_failing("check_storage")

    assert [line.split()[:4] for line in out.splitlines()[1:4]] == [
        ["cloudinary", "yes", "yes", "NO"],
        ["s3", "yes", "yes", "NO"],
        ["local", "no", "yes", "yes"],
    ]
    assert error == "3 providers checked, 2 with problems: cloudinary; s3; no provider in the chain can store files"


def test_check_storage_leaves_the_http_libraries_retry_warnings_out(every_provider, cloudinary_server, s3_proxy, caplog):
    cloudinary_server.fail("refuse")
    s3_proxy.set_mode("refuse")

    with caplog.at_level(logging.WARNING):
        out, err, error = run_failing("check_storage")

    assert "Connection refused" in out and "EndpointConnectionError" in out
    assert error == "3 providers checked, 2 with problems: cloudinary; s3"
    assert logging.getLogger("urllib3").level == logging.NOTSET, "the command left urllib3 quiet after it"


def test_within_a_command_the_http_libraries_say_only_their_errors(caplog):
    retry_warning = "Retrying (Retry(total=1, connect=None, read=0)) after connection broken by 'NewConnectionError'"
    with caplog.at_level(logging.WARNING):
        with quiet_http_libraries():
            logging.getLogger("urllib3.connectionpool").warning(retry_warning)
            logging.getLogger("botocore.endpoint").warning("an endpoint warning")
            logging.getLogger("urllib3.connectionpool").error("an error")
        logging.getLogger("urllib3.connectionpool").warning("after the command")

    assert [record.getMessage() for record in caplog.records] == ["an error", "after the command"]


def test_verify_files_finds_a_missing_file(every_provider, cloudinary_server, user):
    kept = create_on(every_provider, "cloudinary", user, "Kept")
    lost = create_on(every_provider, "s3", user, "Lost")
    providers.get_storage("s3").delete(lost.file.name.removeprefix("s3:"))

    out, err, error = run_failing("check_storage", "--verify-files")

    assert err.strip() == f"Missing: video {lost.pk} (Lost): {lost.file.name}"
    assert error.startswith("3 providers checked, 0 with problems; 1 missing files")
    assert kept.title not in err


# -- cleanup_orphans -----------------------------------------------------------


def test_orphans_are_listed_in_a_dry_run_and_deleted_with_delete(
    every_provider, cloudinary_server, s3_server, media_root, user
):
    videos = [create_on(every_provider, provider, user) for provider in ("cloudinary", "s3", "local")]
    long_ago = datetime.now(timezone.utc) - timedelta(days=3)
    cloudinary_server.put("stremora/videos/orphan_AAAAAAA", b"x" * 10, "video", created_at=long_ago)
    s3_server.client().put_object(Bucket=BUCKET, Key="stremora/videos/orphan_BBBBBBB.mp4", Body=b"y" * 20)
    orphan_on_disk = media_root / "videos" / "orphan_CCCCCCC.mp4"
    orphan_on_disk.write_bytes(b"z" * 30)
    os.utime(orphan_on_disk, (long_ago.timestamp(), long_ago.timestamp()))
    before = where_files_are(cloudinary_server, s3_server, media_root)

    out, _ = run("cleanup_orphans", "--older-than", "0")

    assert "cloudinary:videos/orphan_AAAAAAA.mp4" in out
    assert "s3:videos/orphan_BBBBBBB.mp4" in out
    assert "local:videos/orphan_CCCCCCC.mp4" in out
    assert out.splitlines()[-1] == "3 orphans (60\xa0bytes), none deleted (dry run; use --delete)"
    assert where_files_are(cloudinary_server, s3_server, media_root) == before

    out, _ = run("cleanup_orphans", "--older-than", "0", "--delete")

    assert out.splitlines()[-1] == "3 orphans (60\xa0bytes), 3 deleted (60\xa0bytes)"
    assert where_files_are(cloudinary_server, s3_server, media_root) == referenced()
    assert all(video.file.name in referenced() for video in videos)


def test_young_orphans_are_left_for_uploads_in_flight(every_provider, cloudinary_server, s3_server, media_root):
    cloudinary_server.put("stremora/videos/fresh_AAAAAAA", b"x", "video")
    s3_server.client().put_object(Bucket=BUCKET, Key="stremora/videos/fresh_BBBBBBB.mp4", Body=b"y")
    (media_root / "videos").mkdir(parents=True)
    (media_root / "videos" / "fresh_CCCCCCC.mp4").write_bytes(b"z")
    before = where_files_are(cloudinary_server, s3_server, media_root)

    out, _ = run("cleanup_orphans", "--delete")

    assert out.splitlines()[-1] == "0 orphans (0\xa0bytes), 0 deleted (0\xa0bytes)"
    assert where_files_are(cloudinary_server, s3_server, media_root) == before


def test_one_provider_only(every_provider, cloudinary_server, s3_server, media_root):
    s3_server.client().put_object(Bucket=BUCKET, Key="stremora/videos/orphan_BBBBBBB.mp4", Body=b"y")
    cloudinary_server.put("stremora/videos/orphan_AAAAAAA", b"x", "video", created_at=datetime(2020, 1, 1, tzinfo=timezone.utc))

    out, _ = run("cleanup_orphans", "--provider", "s3", "--older-than", "0", "--delete")

    assert "cloudinary:" not in out
    assert s3_server.keys(BUCKET) == []
    assert len(cloudinary_server.resources()) == 1


def test_a_file_a_video_starts_using_after_the_listing_is_kept(
    every_provider, cloudinary_server, s3_server, media_root, user, monkeypatch
):
    from videos.management.commands import cleanup_orphans

    video = create_on(every_provider, "local", user)
    key = video.file.name.removeprefix("local:")
    digest = stored_digest(video)
    # An interrupted move left a copy on S3 that no row names yet: an orphan, for now.
    s3_server.client().put_object(Bucket=BUCKET, Key="stremora/" + key, Body=b"an unfinished copy")
    list_orphans = cleanup_orphans.find_orphans

    def listing_then_the_move_finishes(provider, older_than_hours):
        orphans = list(list_orphans(provider, older_than_hours))
        if provider == "s3":
            services.move_video(video, "s3")  # run again, it switches the row to that key
        return orphans

    monkeypatch.setattr(cleanup_orphans, "find_orphans", listing_then_the_move_finishes)

    out, _ = run("cleanup_orphans", "--older-than", "0", "--delete")

    assert f"s3:{key}  18\xa0bytes" in out
    assert f"kept: a video uses {key} now" in out
    assert out.splitlines()[-1] == "1 orphans (18\xa0bytes), 0 deleted (0\xa0bytes)"
    video.refresh_from_db()
    assert video.file.name == "s3:" + key
    assert stored_digest(video) == digest
    assert where_files_are(cloudinary_server, s3_server, media_root) == referenced()


def test_a_provider_that_cannot_be_listed_fails_the_run(every_provider, cloudinary_server):
    cloudinary_server.fail("http_500", actions=["resources"])

    _, err, error = run_failing("cleanup_orphans", "--older-than", "0")

    assert err.startswith("cloudinary: could not list files: GeneralError")
    assert error.endswith("1 failures")


# -- retry_deletions -----------------------------------------------------------


def test_retry_deletions_fails_while_a_provider_refuses_then_succeeds(every_provider, s3_server, user, settings):
    name = create_on(every_provider, "s3", user).file.name
    Video.objects.all().delete()
    PendingDeletion.objects.create(name=name, provider="s3", attempts=1, next_attempt_at=django_timezone.now())
    settings.AWS_S3_ENDPOINT_URL = "http://127.0.0.1:9"  # nothing listens there

    out, _, error = run_failing("retry_deletions")

    assert error == "0 removed, 1 failed again, 1 still queued"
    assert f"queued: {name} (attempts 2" in out

    settings.AWS_S3_ENDPOINT_URL = s3_server.url
    out, _ = run("retry_deletions", "--all")

    assert out.splitlines()[-1] == "1 removed, 0 failed again, 0 still queued"
    assert s3_server.keys(BUCKET) == []


# -- migrate_storage -----------------------------------------------------------


def test_migrate_moves_every_video_and_the_providers_agree(every_provider, cloudinary_server, s3_server, media_root, user):
    for provider in ("cloudinary", "local", "cloudinary"):
        create_on(every_provider, provider, user)
    before = {video.pk: stored_digest(video) for video in Video.objects.all()}

    out, _ = run("migrate_storage", "--to", "s3")

    assert out.splitlines()[-1] == "3 moved to s3, 0 skipped, 0 failed"
    assert set(Video.objects.values_list("storage_provider", flat=True)) == {"s3"}
    assert where_files_are(cloudinary_server, s3_server, media_root) == referenced()
    assert {video.pk: stored_digest(video) for video in Video.objects.all()} == before


def test_migrate_dry_run_limit_and_from(every_provider, cloudinary_server, s3_server, media_root, user):
    for provider in ("cloudinary", "local", "local"):
        create_on(every_provider, provider, user)
    before = where_files_are(cloudinary_server, s3_server, media_root)

    out, _ = run("migrate_storage", "--to", "s3", "--dry-run")
    assert out.splitlines()[-1] == "3 videos would move to s3 (dry run)"
    assert where_files_are(cloudinary_server, s3_server, media_root) == before

    out, _ = run("migrate_storage", "--to", "s3", "--from", "local", "--limit", "1")
    assert out.splitlines()[-1] == "1 moved to s3, 0 skipped, 0 failed"
    assert sorted(Video.objects.values_list("storage_provider", flat=True)) == ["cloudinary", "local", "s3"]


def test_migrate_fails_cleanly_when_the_target_is_down(every_provider, cloudinary_server, s3_server, media_root, user):
    create_on(every_provider, "local", user)
    cloudinary_server.fail("http_500", actions=["upload"])

    _, err, error = run_failing("migrate_storage", "--to", "cloudinary")

    assert error == "0 moved to cloudinary, 0 skipped, 1 failed"
    assert "StorageUnavailable" in err
    assert Video.objects.get().storage_provider == "local"
    assert where_files_are(cloudinary_server, s3_server, media_root) == referenced()


def test_a_move_whose_row_switch_fails_keeps_the_old_file(
    every_provider, cloudinary_server, s3_server, media_root, user, refuse_video_rows
):
    video = create_on(every_provider, "local", user)
    digest = stored_digest(video)
    refuse_video_rows("UPDATE")

    _, err, error = run_failing("migrate_storage", "--to", "s3")

    assert error == "0 moved to s3, 0 skipped, 1 failed"
    assert "refused by the test" in err
    assert Video.objects.get().file.name == video.file.name
    assert video.file.storage.exists(video.file.name), "the old copy was removed before the row switched"
    assert stored_digest(video) == digest
    assert where_files_are(cloudinary_server, s3_server, media_root) == referenced()


@pytest.mark.parametrize("target, fault", [("cloudinary", "refuse"), ("cloudinary", "http_401"), ("s3", "refuse")])
def test_a_dry_run_says_the_target_cannot_be_reached(
    every_provider, cloudinary_server, s3_proxy, media_root, user, target, fault
):
    create_on(every_provider, "local", user)
    if target == "cloudinary":
        cloudinary_server.fail(fault)
    else:
        s3_proxy.set_mode(fault)

    out, _, error = run_failing("migrate_storage", "--to", target, "--dry-run")

    assert error.startswith(f"The {target} provider cannot be reached, nothing moved: ")
    assert "would move" not in out
    assert "aws-secret-for-tests" not in error and cloudinary_server.api_secret not in error


def test_a_move_to_a_hanging_target_gives_up_after_the_short_check(every_provider, s3_proxy, user, monkeypatch):
    from videos.management.commands import migrate_storage

    create_on(every_provider, "local", user)
    every_provider.STORAGE_TIMEOUT = 30  # botocore alone would wait twice that: two attempts
    monkeypatch.setattr(migrate_storage, "TARGET_CHECK_TIMEOUT", 3)
    s3_proxy.set_mode("hang")

    started = time.monotonic()
    _, _, error = run_failing("migrate_storage", "--to", "s3")
    elapsed = time.monotonic() - started

    assert error == "The s3 provider cannot be reached, nothing moved: TimeoutError: no answer within 3 s"
    assert elapsed < 3 + 2  # the check's bound and a margin for a loaded machine
    assert Video.objects.get().storage_provider == "local"


def test_migrate_to_an_unconfigured_provider_is_an_error(settings):
    settings.CLOUDINARY_CLOUD_NAME = None

    _, _, error = run_failing("migrate_storage", "--to", "cloudinary")

    assert error == "The cloudinary provider is not configured"


def test_a_migrate_killed_midway_then_run_again_ends_with_everything_moved(
    every_provider, cloudinary_server, s3_server, media_root, user
):
    for number in range(6):
        create_on(every_provider, "s3", user, f"Clip {number}")
    # The fourth copy hangs: the process is killed while it waits.
    cloudinary_server.fail("hang", actions=["upload"], skip=3, times=1)
    environment = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "STORAGE_PROVIDERS": "cloudinary,s3,local",
        "CLOUDINARY_URL": cloudinary_server.cloudinary_url,
        "CLOUDINARY_UPLOAD_PREFIX": cloudinary_server.url,
        "CLOUDINARY_DELIVERY_PREFIX": cloudinary_server.url,
        "AWS_ACCESS_KEY_ID": every_provider.AWS_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": every_provider.AWS_SECRET_ACCESS_KEY,
        "AWS_S3_BUCKET_NAME": BUCKET,
        "AWS_S3_ENDPOINT_URL": s3_server.url,
        "MEDIA_ROOT": str(media_root),
        "STORAGE_TIMEOUT": "60",
    }
    process = subprocess.Popen(
        [sys.executable, "manage.py", "migrate_storage", "--to", "cloudinary"],
        cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while cloudinary_server.requests["upload"] < 4 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert cloudinary_server.requests["upload"] == 4, process.communicate(timeout=5)[0]
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    cloudinary_server.heal()

    # Killed: every video still plays from where its row says.
    for video in Video.objects.all():
        assert video.file.storage.exists(video.file.name), video.file.name
    assert Video.objects.filter(storage_provider="cloudinary").count() == 3

    out, _ = run("migrate_storage", "--to", "cloudinary")
    run("cleanup_orphans", "--older-than", "0", "--delete")

    assert out.splitlines()[-1] == "3 moved to cloudinary, 0 skipped, 0 failed"
    assert set(Video.objects.values_list("storage_provider", flat=True)) == {"cloudinary"}
    assert where_files_are(cloudinary_server, s3_server, media_root) == referenced()


def test_two_migrates_at_once_never_move_a_video_twice(every_provider, cloudinary_server, s3_server, media_root, user):
    for number in range(12):
        create_on(every_provider, "local", user, f"Clip {number}")
    outputs = []

    def migrate():
        try:
            outputs.append(run("migrate_storage", "--to", "cloudinary")[0].splitlines()[-1])
        finally:
            connection.close()

    runs = [threading.Thread(target=migrate) for _ in range(2)]
    for thread in runs:
        thread.start()
    for thread in runs:
        thread.join(120)

    moved = [int(line.split()[0]) for line in outputs]
    assert len(outputs) == 2 and sum(moved) == 12
    assert cloudinary_server.requests["upload"] == 12  # each file copied once
    assert set(Video.objects.values_list("storage_provider", flat=True)) == {"cloudinary"}
    assert where_files_are(cloudinary_server, s3_server, media_root) == referenced()
