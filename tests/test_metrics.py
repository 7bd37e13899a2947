"""/metrics: what each metric counts, and who may read them.

The test process keeps a single-process registry (no PROMETHEUS_MULTIPROC_DIR): counters
live as long as the process, so each test compares a scrape before and after.
"""

import logging
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from storage_backends.breaker import CircuitBreaker
from tests.factories import video_bytes, video_upload
from tests.test_upload_sessions import client_for, complete, send_all, start
from videos.housekeeping import SWEEPS_KEPT, last_sweeps, record_sweep
from videos.models import PendingDeletion, Video

OUTSIDE = "203.0.113.7"  # an address that is not this machine
TOKEN = "metrics-token-for-the-test-suite-0123456789"


def scrape(client=None, **headers):
    response = (client or Client()).get("/metrics", **headers)
    assert response.status_code == 200, response.content
    return samples(response.content.decode())


def samples(text):
    """``{(name, sorted labels): value}`` of a Prometheus text exposition."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(scraped, name, **labels):
    return scraped.get((name, tuple(sorted(labels.items()))), 0)


def changes(before, after, name, **labels):
    return value(after, name, **labels) - value(before, name, **labels)


# -- uploads, fallbacks and provider calls ------------------------------------


@pytest.fixture
def editor(staff_user):
    api = APIClient()
    api.force_authenticate(staff_user)
    return api


def upload(api, size=2000):
    return api.post("/api/videos/", {"title": "Clip", "file": video_upload(size=size)}, format="multipart")


def test_an_upload_that_falls_back_counts_where_it_landed_and_what_it_passed_over(editor, settings, cloudinary_server):
    settings.STORAGE_PROVIDERS = ["cloudinary", "local"]
    cloudinary_server.fail("http_500", actions=["upload"])
    before = scrape()

    assert upload(editor).status_code == 201

    after = scrape()
    assert changes(before, after, "stremora_uploads_total", provider="local", outcome="stored", via="upload") == 1
    assert changes(before, after, "stremora_uploads_total", provider="cloudinary", outcome="stored", via="upload") == 0
    assert changes(
        before, after, "stremora_fallbacks_total", from_provider="cloudinary", to_provider="local", kind="fault"
    ) == 1
    assert changes(before, after, "stremora_provider_call_seconds_count", provider="cloudinary", operation="save") == 1
    assert changes(before, after, "stremora_provider_call_seconds_count", provider="local", operation="save") == 1
    assert changes(before, after, "stremora_provider_call_seconds_sum", provider="cloudinary", operation="save") > 0


def test_a_provider_passed_over_for_want_of_credentials_is_a_fallback_of_its_own_kind(editor, settings):
    settings.STORAGE_PROVIDERS = ["s3", "local"]
    before = scrape()

    assert upload(editor).status_code == 201

    after = scrape()
    assert changes(
        before, after, "stremora_fallbacks_total", from_provider="s3", to_provider="local", kind="not_configured"
    ) == 1


def test_an_upload_no_provider_stored_counts_as_failed(editor, settings, tmp_path):
    settings.STORAGE_PROVIDERS = ["local"]
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    settings.MEDIA_ROOT = blocked
    before = scrape()

    assert upload(editor).status_code == 503

    after = scrape()
    assert changes(before, after, "stremora_uploads_total", provider="none", outcome="failed", via="upload") == 1
    assert changes(before, after, "stremora_uploads_total", provider="local", outcome="stored", via="upload") == 0


def test_reads_of_a_stored_file_are_timed_by_operation(editor, settings):
    settings.STORAGE_PROVIDERS = ["local"]
    video = Video.objects.get(pk=upload(editor).json()["id"])
    before = scrape()

    video.file.storage.size(video.file.name)
    video.file.storage.exists(video.file.name)
    with video.file.storage.open(video.file.name) as opened:
        opened.read(10)

    after = scrape()
    for operation in ("size", "exists", "open"):
        assert changes(before, after, "stremora_provider_call_seconds_count", provider="local", operation=operation) == 1


# -- direct uploads -------------------------------------------------------------


def test_a_completed_direct_upload_counts_as_stored_directly(user, settings):
    settings.STORAGE_PROVIDERS = ["local"]
    api = client_for(user)
    data = video_bytes(50_000)
    direct = start(api, data)
    send_all(api, direct, data)
    before = scrape()

    assert complete(api, direct).status_code == 201

    after = scrape()
    assert changes(before, after, "stremora_uploads_total", provider="local", outcome="stored", via="direct") == 1


def test_the_provider_calls_of_a_direct_upload_are_timed_by_operation(user, settings, s3_inprocess):
    settings.STORAGE_PROVIDERS = ["s3"]
    api = client_for(user)
    data = video_bytes(50_000)
    before = scrape()
    direct = start(api, data)
    assert api.get(f"/api/uploads/{direct['id']}/").status_code == 200  # what S3 holds: ListParts
    assert api.delete(f"/api/uploads/{direct['id']}/").status_code == 204

    after = scrape()
    for operation in ("direct_start", "direct_received", "direct_abort"):
        assert changes(before, after, "stremora_provider_call_seconds_count", provider="s3", operation=operation) == 1

    settings.STORAGE_PROVIDERS = ["local"]
    direct = start(api, data)
    send_all(api, direct, data)
    before = scrape()
    assert complete(api, direct).status_code == 201
    after = scrape()
    for operation in ("direct_finish", "direct_read_head"):
        assert changes(before, after, "stremora_provider_call_seconds_count", provider="local", operation=operation) == 1


def test_a_direct_upload_moved_on_from_s3_counts_the_fallback(user, settings, s3_inprocess):
    settings.STORAGE_PROVIDERS = ["s3", "local"]
    api = client_for(user)
    data = video_bytes(50_000)
    direct = start(api, data)
    assert direct["provider"] == "s3"
    moved = api.post(f"/api/uploads/{direct['id']}/fail/", {"reason": "connection refused"}, format="json").json()
    assert moved["provider"] == "local"
    send_all(api, moved, data)
    before = scrape()

    assert complete(api, moved).status_code == 201

    after = scrape()
    assert changes(before, after, "stremora_uploads_total", provider="local", outcome="stored", via="direct") == 1
    assert changes(
        before, after, "stremora_fallbacks_total", from_provider="s3", to_provider="local", kind="fault"
    ) == 1


def test_a_direct_upload_no_provider_could_start_counts_as_failed(user, settings, s3_outage):
    settings.STORAGE_PROVIDERS = ["s3"]
    before = scrape()

    response = client_for(user).post("/api/uploads/", {"filename": "clip.mp4", "size": 1000}, format="json")

    assert response.status_code == 503
    after = scrape()
    assert changes(before, after, "stremora_uploads_total", provider="none", outcome="failed", via="direct") == 1


def test_a_direct_upload_with_no_provider_left_counts_as_failed(user, settings):
    settings.STORAGE_PROVIDERS = ["local"]
    api = client_for(user)
    direct = start(api, video_bytes(1000))
    before = scrape()

    response = api.post(f"/api/uploads/{direct['id']}/fail/", {"reason": "connection refused"}, format="json")

    assert response.status_code == 503
    after = scrape()
    assert changes(before, after, "stremora_uploads_total", provider="none", outcome="failed", via="direct") == 1


# -- read at scrape time ----------------------------------------------------------


def test_breaker_state_is_read_from_its_record(settings, db):
    settings.STORAGE_PROVIDERS = ["local"]
    settings.STORAGE_BREAKER_FAILURES = 1
    assert value(scrape(), "stremora_breaker_state", provider="local", state="closed") == 1

    CircuitBreaker("local").record_failure()
    scraped = scrape()
    assert value(scraped, "stremora_breaker_state", provider="local", state="open") == 1
    assert value(scraped, "stremora_breaker_state", provider="local", state="closed") == 0

    settings.STORAGE_BREAKER_COOLDOWN = 0.01
    CircuitBreaker("local").record_failure()
    time.sleep(0.05)
    scraped = scrape()
    assert value(scraped, "stremora_breaker_state", provider="local", state="half_open") == 1
    assert value(scraped, "stremora_breaker_state", provider="local", state="open") == 0
    assert CircuitBreaker("local").admit().name == "TRIAL"  # the scrape took no trial lease


def test_videos_bytes_and_pending_deletions_per_provider_come_from_the_database(user):
    for provider, size in (("s3", 1000), ("s3", 2500), ("local", 700)):
        Video.objects.create(title="t", owner=user, file=f"{provider}:videos/x.mp4", storage_provider=provider,
                             size_bytes=size)
    PendingDeletion.objects.create(name="s3:videos/old.mp4", provider="s3", next_attempt_at=timezone.now())

    scraped = scrape()

    assert value(scraped, "stremora_videos", provider="s3") == 2
    assert value(scraped, "stremora_stored_bytes", provider="s3") == 3500
    assert value(scraped, "stremora_videos", provider="local") == 1
    assert value(scraped, "stremora_stored_bytes", provider="local") == 700
    assert value(scraped, "stremora_videos", provider="cloudinary") == 0
    assert value(scraped, "stremora_pending_deletions", provider="s3") == 1
    assert value(scraped, "stremora_pending_deletions", provider="local") == 0


def test_the_last_orphan_sweep_is_recorded_and_shown(settings, media_root, db):
    settings.STORAGE_PROVIDERS = ["local"]
    orphan = media_root / "videos" / "lost.mp4"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(video_bytes(100))

    call_command("cleanup_orphans", "--older-than", "0", "--delete")

    (sweep,) = last_sweeps()["local"]
    assert (sweep.found, sweep.deleted) == (1, 1)
    scraped = scrape()
    assert value(scraped, "stremora_orphans_found", provider="local") == 1
    assert time.time() - value(scraped, "stremora_orphan_sweep_timestamp_seconds", provider="local") < 60

    call_command("cleanup_orphans", "--older-than", "0")
    assert value(scrape(), "stremora_orphans_found", provider="local") == 0


def test_each_providers_sweep_is_recorded_with_its_own_counts(settings, media_root, s3_inprocess, db):
    settings.STORAGE_PROVIDERS = ["s3", "local"]
    s3_inprocess.put_object(Bucket="stremora-test", Key="stremora/videos/lost.mp4", Body=video_bytes(100))
    for name in ("lost.mp4", "gone.mp4"):
        orphan = media_root / "videos" / name
        orphan.parent.mkdir(parents=True, exist_ok=True)
        orphan.write_bytes(video_bytes(100))
    time.sleep(1)  # S3 keeps whole seconds: the object is then older than --older-than 0

    call_command("cleanup_orphans", "--older-than", "0", "--delete")

    sweeps = last_sweeps()
    assert [(sweeps[provider][0].found, sweeps[provider][0].deleted) for provider in ("s3", "local")] == [(1, 1), (2, 2)]


def test_only_the_last_sweeps_are_kept(db):
    for found in range(SWEEPS_KEPT + 3):
        record_sweep("s3", found=found, deleted=0)
    sweeps = last_sweeps(per_provider=SWEEPS_KEPT + 3)["s3"]
    assert [sweep.found for sweep in sweeps] == list(range(SWEEPS_KEPT + 2, 2, -1))


# -- who may read them --------------------------------------------------------------


@pytest.fixture
def not_found_page(db):
    response = Client(REMOTE_ADDR=OUTSIDE).get("/no-such-page")
    assert response.status_code == 404
    return response.content


def refused_like_an_unknown_address(response, not_found_page):
    return response.status_code == 404 and response.content == not_found_page and b"stremora_" not in response.content


def test_a_connection_from_this_machine_may_scrape_when_no_token_is_set(db):
    response = Client().get("/metrics")  # the test client's address is 127.0.0.1
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "no-store" in response["Cache-Control"] and "private" in response["Cache-Control"]


@pytest.mark.parametrize("headers", [
    {"REMOTE_ADDR": OUTSIDE},
    {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": OUTSIDE},  # through a proxy on this machine
    {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_REAL_IP": OUTSIDE},
    {"REMOTE_ADDR": "::1", "HTTP_FORWARDED": f"for={OUTSIDE}"},
    {"REMOTE_ADDR": OUTSIDE, "HTTP_AUTHORIZATION": "Bearer anything-at-all-while-no-token-is-set"},
])
def test_anyone_else_gets_the_plain_404_when_no_token_is_set(headers, not_found_page):
    assert refused_like_an_unknown_address(Client().get("/metrics", **headers), not_found_page)


def test_a_post_is_refused_like_an_unknown_address(not_found_page):
    response = Client(REMOTE_ADDR=OUTSIDE, enforce_csrf_checks=True).post("/metrics", {"x": "1"})
    assert refused_like_an_unknown_address(response, not_found_page)


def test_a_staff_session_may_scrape_from_anywhere(staff_user, user, not_found_page, settings):
    settings.METRICS_TOKEN = TOKEN
    staff = Client(REMOTE_ADDR=OUTSIDE)
    staff.force_login(staff_user)
    assert staff.get("/metrics").status_code == 200

    member = Client(REMOTE_ADDR=OUTSIDE)
    member.force_login(user)
    assert refused_like_an_unknown_address(member.get("/metrics"), not_found_page)


def test_with_a_token_its_bearer_may_scrape_and_loopback_alone_no_longer_may(settings, not_found_page, caplog):
    settings.METRICS_TOKEN = TOKEN
    outside = Client(REMOTE_ADDR=OUTSIDE)

    assert outside.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200
    assert outside.get("/metrics", HTTP_AUTHORIZATION=f"bearer {TOKEN}").status_code == 200
    with caplog.at_level(logging.WARNING, logger="videos.views"):
        wrong = outside.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN[:-1]}x")
    assert refused_like_an_unknown_address(wrong, not_found_page)
    assert "wrong bearer token" in caplog.text and TOKEN[:10] not in caplog.text
    assert refused_like_an_unknown_address(outside.get("/metrics", HTTP_AUTHORIZATION=f"Token {TOKEN}"), not_found_page)
    assert refused_like_an_unknown_address(outside.get("/metrics", HTTP_AUTHORIZATION="Bearer é"), not_found_page)
    assert refused_like_an_unknown_address(Client().get("/metrics"), not_found_page)  # loopback, no token


def test_metrics_are_not_in_the_public_api_schema(db):
    schema = Client().get("/api/schema/", HTTP_ACCEPT="application/json").content.decode()
    assert "/api/videos/" in schema and "metrics" not in schema


def test_a_short_token_is_refused_at_startup():
    from pathlib import Path

    from stremora.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="METRICS_TOKEN must be at least 24") as refused:
        load_config({"DEBUG": "true", "METRICS_TOKEN": "short-secret"}, Path("/tmp"))
    assert "short-secret" not in str(refused.value)
    assert load_config({"DEBUG": "true", "METRICS_TOKEN": TOKEN}, Path("/tmp")).metrics_token == TOKEN


def test_background_jobs_are_counted_from_the_rows_they_write(user, settings):
    rows = [("pending", ""), ("done", "queued"), ("done", "failed"), ("failed", "done"), ("done", "")]
    for processing, move_status in rows:
        Video.objects.create(title="t", owner=user, file="local:videos/x.mp4", storage_provider="local",
                             processing=processing, move_status=move_status)

    scraped = scrape()

    assert [value(scraped, "stremora_video_processing", state=state) for state in ("pending", "done", "failed")] == [
        1, 3, 1
    ]
    assert [value(scraped, "stremora_video_moves", status=status) for status in ("queued", "moving", "done", "failed")] \
        == [1, 0, 1, 1]
    assert ("stremora_jobs_waiting", ()) not in scraped  # no job queue: jobs run inline


def test_with_a_job_queue_the_jobs_waiting_in_it_are_counted(user, settings):
    from tests.stack import RedisServer
    from videos import job_queue
    from videos.models import Video as VideoModel

    with RedisServer() as redis_server:
        settings.CELERY_TASK_ALWAYS_EAGER = False
        settings.CELERY_BROKER_URL = redis_server.url.removesuffix("/0") + "/1"
        from tests.test_jobs import forget_broker_connections

        forget_broker_connections()
        try:
            for _ in range(3):
                video = VideoModel.objects.create(title="t", owner=user, file="local:videos/x.mp4")
                assert job_queue.send("process_upload", video.pk)
            assert value(scrape(), "stremora_jobs_waiting") == 3
        finally:
            settings.CELERY_BROKER_URL = "memory://"
            forget_broker_connections()
    # The broker gone: the scrape still answers, without the count.
    settings.CELERY_BROKER_URL = redis_server.url.removesuffix("/0") + "/1"
    forget_broker_connections()
    try:
        scraped = scrape()
    finally:
        settings.CELERY_BROKER_URL = "memory://"
        forget_broker_connections()
    assert ("stremora_jobs_waiting", ()) not in scraped and value(scraped, "stremora_videos", provider="local") == 3
