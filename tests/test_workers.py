"""Background jobs on real processes: Celery workers on Redis, moves killed midway.

PostgreSQL is the test run's server, Redis a ``redis-server`` of the test's own, S3
moto's server. The workers reach S3 through a ``CountingProxy`` that holds every part
of an upload a moment, as a slow link would, so a copy lasts long enough to be killed
in the middle; gunicorn serves the API the videos are played from while they move.
Jobs are enqueued as an operator would: ``migrate_storage --queue``.
"""

import re
import secrets
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

import pytest
import urllib3
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from tests.counting_proxy import CountingProxy
from tests.factories import sha256, video_upload
from tests.fault_proxy import FaultProxy
from tests.stack import ROOT, VISIBILITY_TIMEOUT, CeleryWorker, GunicornServer, RedisServer, site_environment, wait_until
from videos import housekeeping, jobs, services
from videos.models import Video

pytestmark = pytest.mark.django_db(transaction=True)

BUCKET = "stremora-test"
MIB = 1024 * 1024
VIDEO_SIZE = 12 * MIB  # two parts of a multipart upload: 8 MiB and 4 MiB
PART_DELAY = 1.5  # seconds the proxy holds each part: a copy lasts at least this long
PLAY_BYTES = 64 * 1024  # what a poll reads of each video: enough to start playing it
POLL_PAUSE = 0.4  # seconds between two rounds of plays: under the API's rate limit for a user


@dataclass
class Site:
    broker: RedisServer
    s3_proxy: CountingProxy
    web: GunicornServer
    worker_environment: dict
    workers: list = field(default_factory=list)

    def start_worker(self, **options):
        worker = CeleryWorker(self.worker_environment, app="tests.worker_app", **options).start()
        self.workers.append(worker)
        return worker

    def enqueue_moves(self, to_provider, times=1, **environment):
        """``manage.py migrate_storage --to P --queue``, as an operator runs it; ``times``
        runs of it one right after the other, in one process (starting Django once).
        ``environment``: the operator's machine's settings where they differ from the
        workers' (the command checks that it can reach the target first)."""
        command = f"call_command('migrate_storage', '--to', {to_provider!r}, '--queue')"
        return subprocess.run(
            [sys.executable, "-c", f"import django; django.setup(); from django.core.management import call_command; "
                                   f"{'; '.join([command] * times)}"],
            cwd=ROOT, env={**self.worker_environment, **environment, "DJANGO_SETTINGS_MODULE": "stremora.settings"},
            capture_output=True, text=True, timeout=120, check=True,
        ).stdout

    def worker_logs(self):
        return "\n\n".join(f"--- {worker.hostname}\n{worker.log()[-6000:]}" for worker in self.workers)


@pytest.fixture
def site(settings, s3_server, media_root):
    """The web and the workers on one broker; the test process sees the same database
    and providers (S3 straight, the workers through the slow proxy)."""
    media_root.mkdir(parents=True, exist_ok=True)
    settings.STORAGE_PROVIDERS = ["local", "s3"]
    common = dict(
        secret_key=secrets.token_urlsafe(50), media_root=media_root, providers="local,s3", s3_settings=settings,
        bucket=BUCKET,
    )
    with RedisServer() as broker, CountingProxy("127.0.0.1", s3_server.port, delay=PART_DELAY) as s3_proxy:
        web_environment = site_environment(s3_url=s3_server.url, CELERY_BROKER_URL=broker.url, **common)
        worker_environment = site_environment(s3_url=s3_proxy.url, CELERY_BROKER_URL=broker.url, **common)
        with GunicornServer(web_environment, workers=2) as web:
            site = Site(broker, s3_proxy, web, worker_environment)
            try:
                yield site
            finally:
                for worker in site.workers:
                    worker.stop()


def make_videos(count, size=VIDEO_SIZE):
    """Published videos on local disk; their original bytes by id."""
    owner = get_user_model().objects.create_user("uploader", password=secrets.token_urlsafe(12))
    originals = {}
    for number in range(count):
        upload = video_upload(f"clip{number}.mp4", size=size)
        video = services.create_video(owner=owner, title=f"Clip {number}", file=upload, is_published=True)
        assert video.storage_provider == "local"
        originals[video.pk] = upload.body
    return originals


class PlaybackWatch:
    """Plays every video from the API, over and over, while jobs move them: asks the
    API for the video, then reads the start of its ``video_url`` and compares it with
    the original's. A failure counts only when the video's current URL fails: a URL
    the API gave just before a move switched the row may stop working once the old
    copy is removed, and a player asks again then."""

    def __init__(self, base_url, originals):
        self.base_url = base_url
        self.originals = originals
        owner = Video.objects.get(pk=next(iter(originals))).owner
        self.headers = {"Authorization": f"Token {Token.objects.get_or_create(user=owner)[0].key}"}
        self.http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=5, read=30))
        self.failures = []  # (video id, what went wrong)
        self.plays = 0
        self.stale_urls = 0
        self.providers_seen = {video_id: set() for video_id in originals}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="playback-watch", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join(60)

    def _run(self):
        while not self._stop.is_set():
            for video_id in self.originals:
                problem = self._play(video_id)
                if problem is not None:
                    problem = self._play(video_id)  # the URL may be one a move just retired
                    if problem is None:
                        self.stale_urls += 1
                    else:
                        self.failures.append((video_id, problem))
                self.plays += 1
            self._stop.wait(POLL_PAUSE)

    def _play(self, video_id):
        try:
            answer = self.http.request("GET", f"{self.base_url}/api/videos/{video_id}/", headers=self.headers)
            if answer.status != 200:
                return f"API answered {answer.status}"
            video = answer.json()
            self.providers_seen[video_id].add(video["storage_provider"])
            url = video["video_url"]
            if url.startswith("/"):
                url = self.base_url + url
            played = self.http.request("GET", url, headers={"Range": f"bytes=0-{PLAY_BYTES - 1}"})
        except urllib3.exceptions.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        if played.status not in (200, 206):
            return f"{url} answered {played.status}"
        if played.data[:PLAY_BYTES] != self.originals[video_id][:PLAY_BYTES]:
            return f"{url} served other bytes"
        return None


def job_spans(log):
    """``(received, ended)`` of each job a worker's log shows, as datetimes."""
    stamps = {}
    for line in log.splitlines():
        match = re.match(r"(\S+ \S+) INFO .*Task \S+\[(\S+)\] (received|succeeded in|raised|retry)", line)
        if match:
            when, job, what = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f"), match[2], match[3]
            stamps.setdefault(job, [None, None])[0 if what == "received" else 1] = when
    return [tuple(span) for span in stamps.values()]


def stored_sha256(name):
    from django.core.files.storage import default_storage

    with default_storage.open(name) as stored:
        return sha256(stored.read())


def orphans():
    """Files no video references, on both providers, before any sweep."""
    return {
        f"{provider}:{stored.key}"
        for provider in ("local", "s3")
        for stored in housekeeping.find_orphans(provider, older_than_hours=0)
    }


def test_a_worker_killed_mid_move_loses_nothing_and_the_videos_play_throughout(site):
    originals = make_videos(4)
    before = orphans()

    with PlaybackWatch(site.web.url, originals) as watch:
        site.enqueue_moves("s3")
        first = site.start_worker()
        # A copy is under way: the first upload to S3 has begun and a part is on the slow link.
        wait_until(lambda: site.s3_proxy.in_flight > 0 and any(
            method == "POST" for method, *_ in site.s3_proxy.requests), 60, "a copy to S3 under way")
        assert Video.objects.filter(storage_provider="s3").count() < len(originals)
        killed = first.kill()
        killed_at = time.monotonic()

        second = site.start_worker()
        wait_until(lambda: Video.objects.filter(storage_provider="s3").count() == len(originals),
                   VISIBILITY_TIMEOUT + 90, "every video on S3")
        took = time.monotonic() - killed_at
        wait_until(lambda: all("s3" in seen for seen in watch.providers_seen.values()), 30, "every video played from S3")

    videos = {video.pk: video for video in Video.objects.all()}
    print(
        f"\nworkers: killed {killed} mid-copy; every video on S3 {took:.1f} s later;"
        f" {watch.plays} plays, {watch.stale_urls} retried URLs, {len(watch.failures)} failures"
    )
    assert len(killed) >= 2, "the pool's process died with the worker"
    assert "succeeded" in second.log(), site.worker_logs()
    assert {video_id: video.storage_provider for video_id, video in videos.items()} == dict.fromkeys(originals, "s3")
    assert {video_id: stored_sha256(video.file.name) for video_id, video in videos.items()} == {
        video_id: sha256(body) for video_id, body in originals.items()
    }
    assert orphans() == before == set()
    assert watch.failures == []
    assert watch.plays >= len(originals) * 10
    assert all(seen == {"local", "s3"} for seen in watch.providers_seen.values()), watch.providers_seen


def test_two_workers_never_move_the_same_video_at_once(site):
    originals = make_videos(1)
    (video_id,) = originals
    first, second = site.start_worker(name="first"), site.start_worker(name="second")

    queued = site.enqueue_moves("s3", times=2)  # the same video twice, the second while the first move copies it

    assert queued.count("1 queued for a move to s3") == 2, queued
    logs = lambda: first.log() + second.log()  # noqa: E731
    wait_until(lambda: logs().count("succeeded in") == 2, 90, f"both jobs ended\n{site.worker_logs()}")
    video = Video.objects.get(pk=video_id)
    copies = {path for method, path, part, status in site.s3_proxy.requests if method == "POST"}
    assert "move_video" in first.log() and "move_video" in second.log(), "each worker took one of the jobs"
    (first_span,), (second_span,) = job_spans(first.log()), job_spans(second.log())
    assert first_span[0] < second_span[1] and second_span[0] < first_span[1], "the two jobs ran at the same time"
    # One copy was made, by one worker: one object written, each of its parts sent once.
    assert len(copies) == 1 and set(site.s3_proxy.parts_landed().values()) == {1}, site.s3_proxy.requests
    assert (video.storage_provider, video.move_status) == ("s3", "done")
    assert stored_sha256(video.file.name) == sha256(originals[video_id])
    assert orphans() == set()


def test_a_move_that_keeps_failing_ends_failed_with_its_reason(site, settings, s3_server):
    # The workers' S3 refuses every connection, for good; the operator's machine, which
    # queues the move, reaches it.
    with FaultProxy("127.0.0.1", s3_server.port) as refusing:
        refusing.set_mode("refuse")
        reachable = site.worker_environment["AWS_S3_ENDPOINT_URL"]
        site.worker_environment["AWS_S3_ENDPOINT_URL"] = refusing.url
        originals = make_videos(1)
        (video_id,) = originals
        worker = site.start_worker()
        site.enqueue_moves("s3", AWS_S3_ENDPOINT_URL=reachable)
        wait_until(lambda: Video.objects.get(pk=video_id).move_status == "failed", 120,
                   f"the move given up\n{site.worker_logs()}")

    video = Video.objects.get(pk=video_id)
    assert video.storage_provider == "local"
    assert stored_sha256(video.file.name) == sha256(originals[video_id])
    assert "s3" in video.move_detail, video.move_detail
    assert settings.AWS_SECRET_ACCESS_KEY not in video.move_detail
    assert worker.log().count("Retry in") == jobs.RETRIES, worker.log()[-4000:]
    assert orphans() == set()
