"""End to end against the running system: no upload lost, no file orphaned, no 5xx.

gunicorn with several workers on PostgreSQL, Redis as the shared cache, moto's S3
server behind a fault proxy and the Cloudinary test server. Clients upload, replace,
read and delete through the API while faults are injected; then the invariants are
checked against the database and every provider.

Bounded for the test run (about a minute). ``scripts/test --soak -k reliability``
runs the long version: more clients, ten minutes.

The same load runs twice: with the jobs inline (no broker: gunicorn cuts each poster in
the upload's request), and with a Celery worker process on Redis taking
``process_upload``, some of the uploads then real videos whose duration and poster the
worker must deliver.
"""

import contextlib
import json
import random
import secrets
import socket
import struct
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from io import StringIO

import psycopg
import pytest
import urllib3
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.db import connection
from rest_framework.authtoken.models import Token

from storage_backends import providers
from tests.factories import MP4_HEADER, real_video, sha256
from tests.fault_proxy import FaultProxy
from tests.stack import CeleryWorker, GunicornServer, RedisServer, site_environment
from videos import jobs, services
from videos.models import PendingDeletion, Video

pytestmark = pytest.mark.django_db(transaction=True)

BUCKET = "stremora-test"
WORKERS = 3
CELERY_CONCURRENCY = 2  # processes of the worker's pool, with a worker
BREAKER_FAILURES = 3
BREAKER_COOLDOWN = 4
STORAGE_TIMEOUT = 2
REAL_VIDEO_SECONDS = 2
REAL_VIDEO_SHARE = 0.3  # of the uploads and replacements, with a worker
# Seconds the worker may go without ending a pending processing, once the load stops: a
# job whose reads the faults cut may be waiting out its longest backoff before its last try.
PROCESSING_STALL = min(jobs.RETRY_BACKOFF * 2 ** (jobs.RETRIES - 1), jobs.RETRY_BACKOFF_MAX) + 30


@pytest.fixture
def soak(request):
    return request.config.getoption("--soak")


@pytest.fixture
def stack(settings, cloudinary_server, s3_server, media_root):
    """The whole system on loopback; the test process sees the same providers and database."""
    with running_stack(settings, cloudinary_server, s3_server, media_root) as stack:
        yield stack


@pytest.fixture
def stack_with_worker(settings, cloudinary_server, s3_server, media_root, tmp_path):
    """The same, with a job queue (Redis) and a Celery worker that cuts the posters."""
    with running_stack(settings, cloudinary_server, s3_server, media_root, worker=True) as stack:
        stack.real_clip = real_video(tmp_path, seconds=REAL_VIDEO_SECONDS).read_bytes()
        yield stack


@contextlib.contextmanager
def running_stack(settings, cloudinary_server, s3_server, media_root, worker=False):
    media_root.mkdir(parents=True, exist_ok=True)
    settings.STORAGE_PROVIDERS = ["cloudinary", "s3", "local"]
    with RedisServer() as redis_server, FaultProxy("127.0.0.1", s3_server.port) as s3_proxy:
        jobs = {"CELERY_BROKER_URL": redis_server.url.removesuffix("/0") + "/1"} if worker else {}
        environment = site_environment(
            secret_key=secrets.token_urlsafe(50),
            media_root=media_root,
            providers="cloudinary,s3,local",
            cloudinary=cloudinary_server,
            s3_url=s3_proxy.url,
            s3_settings=settings,
            bucket=BUCKET,
            CACHE_URL=redis_server.url,
            STORAGE_TIMEOUT=STORAGE_TIMEOUT,
            STORAGE_BREAKER_FAILURES=BREAKER_FAILURES,
            STORAGE_BREAKER_COOLDOWN=BREAKER_COOLDOWN,
            MAX_UPLOAD_MB=5,
            **jobs,
        )
        with contextlib.ExitStack() as processes:
            site = processes.enter_context(GunicornServer(environment, workers=WORKERS))
            celery = (
                processes.enter_context(CeleryWorker(environment, concurrency=CELERY_CONCURRENCY, app="tests.worker_app"))
                if worker else None
            )
            yield Stack(site, redis_server, s3_proxy, cloudinary_server, s3_server, media_root, celery)


@dataclass
class Stack:
    site: GunicornServer
    redis: RedisServer
    s3_proxy: FaultProxy
    cloudinary: object
    s3: object
    media_root: object
    worker: CeleryWorker | None = None
    real_clip: bytes | None = None  # a real MP4 some uploads are, when a worker cuts the posters

    def stored_names(self):
        """Every file each provider holds, as qualified stored names."""
        cloudinary = providers.get_storage("cloudinary")
        names = {f"cloudinary:{cloudinary.name_of(record)}" for record in self.cloudinary.resources().values()}
        names |= {"s3:" + key.removeprefix("stremora/") for key in self.s3.keys(BUCKET)}
        names |= {
            "local:" + path.relative_to(self.media_root).as_posix()
            for path in self.media_root.rglob("*")
            if path.is_file()
        }
        return names


def server_error_reports(log):
    """The tracebacks Django logged for 5xx answers, from the gunicorn log."""
    lines, reports = log.splitlines(), []
    for number, line in enumerate(lines):
        if "Internal Server Error" in line or "Service Unavailable" in line:
            reports.append("\n".join(lines[number : number + 60]))
    return "\n\n".join(reports) or log[-4000:]


def referenced_names():
    return {name for pair in Video.objects.values_list("file", "thumbnail") for name in pair if name}


def make_clients(count):
    users = []
    for number in range(count):
        user = get_user_model().objects.create_user(f"client{number}", password=secrets.token_urlsafe(12))
        users.append((user, Token.objects.create(user=user).key))
    return users


# -- the load ------------------------------------------------------------------


@dataclass
class Ledger:
    """What the clients were told, to be checked against what the system holds.

    Times are ``time.monotonic()`` of this process, comparable with the ``FaultLog``'s.
    """

    lock: threading.Lock = field(default_factory=threading.Lock)
    videos: dict = field(default_factory=dict)  # id -> set of acceptable sha256 (several after an unanswered replace)
    unanswered_uploads: set = field(default_factory=set)  # titles: no HTTP answer (worker killed)
    unanswered_deletes: set = field(default_factory=set)
    # sha256 of files a request without an answer may have left behind: its new file, or
    # the old ones of the video it replaced or deleted. Only these may be orphans.
    unanswered_digests: set = field(default_factory=set)
    unanswered: list = field(default_factory=list)  # (started, ended, "METHOD path") of requests with no answer
    refused_titles: set = field(default_factory=set)  # uploads answered with an error status
    statuses: Counter = field(default_factory=Counter)
    landed: Counter = field(default_factory=Counter)
    landings: list = field(default_factory=list)  # (started, ended, provider) of each stored upload or replace
    requests: int = 0
    read_mismatches: list = field(default_factory=list)
    failed_reads: list = field(default_factory=list)  # (started, ended, url, reason)
    real_videos: set = field(default_factory=set)  # ids of videos whose file is a real video, as answered
    processing_answered: Counter = field(default_factory=Counter)  # the "processing" of each 201

    def count(self, status, started, what):
        with self.lock:
            self.requests += 1
            self.statuses[status] += 1
            if status == "no answer":
                self.unanswered.append((started, time.monotonic(), what))

    def cut_by(self, windows, site_url):
        """Requests under way during one of ``windows`` that got no answer: API calls, and
        reads of local files (which the site serves)."""
        with self.lock:
            cut = [what for started, ended, what in self.unanswered if during_one(started, ended, windows)]
            cut += [
                url
                for started, ended, url, _ in self.failed_reads
                if url.startswith(site_url) and during_one(started, ended, windows)
            ]
        return cut


def video_body(rng, real_clip=None):
    """Random bytes behind an MP4 header; with ``real_clip``, sometimes that video with a
    ``free`` box of random bytes after it (a file of its own, as playable)."""
    if real_clip is not None and rng.random() < REAL_VIDEO_SHARE:
        padding = rng.randbytes(rng.randint(2_000, 20_000))
        return real_clip + struct.pack(">I", len(padding) + 8) + b"free" + padding
    return MP4_HEADER + rng.randbytes(rng.randint(2_000, 150_000))


def run_client(base_url, token, ledger, stop, seed, real_clip=None):
    rng = random.Random(seed)
    http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=5, read=90))
    headers = {"Authorization": f"Token {token}"}
    mine = []

    def call(method, path, **kwargs):
        started = time.monotonic()
        try:
            response = http.request(method, base_url + path, headers=headers, **kwargs)
        except urllib3.exceptions.HTTPError:
            ledger.count("no answer", started, f"{method} {path}")
            return None
        ledger.count(response.status, started, f"{method} {path}")
        return response

    def landed(response, started):
        provider = json.loads(response.data)["storage_provider"]
        ledger.landed[provider] += 1
        ledger.landings.append((started, time.monotonic(), provider))

    while not stop.is_set():
        action = rng.choices(["upload", "replace", "read", "delete"], weights=[5, 2, 3, 1])[0]
        if action == "upload" or not mine:
            title = f"load-{uuid.uuid4().hex}"
            body = video_body(rng, real_clip)
            started = time.monotonic()
            response = call(
                "POST", "/api/videos/",
                fields={"title": title, "is_published": "true", "file": ("clip.mp4", body, "video/mp4")},
            )
            with ledger.lock:
                if response is None:
                    ledger.unanswered_uploads.add(title)
                    ledger.unanswered_digests.add(sha256(body))
                elif response.status == 201:
                    video = json.loads(response.data)
                    ledger.videos[video["id"]] = {sha256(body)}
                    ledger.processing_answered[video.get("processing")] += 1
                    if real_clip is not None and body.startswith(real_clip):
                        ledger.real_videos.add(video["id"])
                    landed(response, started)
                    mine.append(video["id"])
                else:
                    ledger.refused_titles.add(title)
        elif action == "replace":
            video_id = rng.choice(mine)
            body = video_body(rng, real_clip)
            started = time.monotonic()
            response = call("PATCH", f"/api/videos/{video_id}/", fields={"file": ("recut.mp4", body, "video/mp4")})
            with ledger.lock:
                if response is None:
                    ledger.unanswered_digests |= {sha256(body), *ledger.videos[video_id]}
                    ledger.videos[video_id].add(sha256(body))  # it may or may not have happened
                    ledger.real_videos.discard(video_id)  # which file it has is not known
                elif response.status == 200:
                    ledger.videos[video_id] = {sha256(body)}
                    if real_clip is not None and body.startswith(real_clip):
                        ledger.real_videos.add(video_id)
                    else:
                        ledger.real_videos.discard(video_id)
                    landed(response, started)
        elif action == "read":
            video_id = rng.choice(mine)
            response = call("GET", f"/api/videos/{video_id}/")
            if response is None or response.status >= 500:
                continue  # counted in the statuses, checked by the test
            started = time.monotonic()
            if response.status != 200:
                with ledger.lock:
                    ledger.failed_reads.append((started, started, f"/api/videos/{video_id}/", f"HTTP {response.status}"))
                continue
            url = json.loads(response.data)["video_url"]
            if url.startswith("/"):
                url = base_url + url
            try:
                content = http.request("GET", url)
            except urllib3.exceptions.HTTPError as exc:
                with ledger.lock:
                    ledger.failed_reads.append((started, time.monotonic(), url, type(exc).__name__))
                continue
            with ledger.lock:
                if sha256(content.data) not in ledger.videos[video_id]:
                    ledger.read_mismatches.append((video_id, url, content.status))
        else:
            video_id = mine.pop(rng.randrange(len(mine)))
            response = call("DELETE", f"/api/videos/{video_id}/")
            with ledger.lock:
                if response is None:
                    ledger.unanswered_deletes.add(video_id)
                    ledger.unanswered_digests |= ledger.videos.pop(video_id)
                elif response.status == 204:
                    del ledger.videos[video_id]
                else:
                    mine.append(video_id)


# -- the faults ----------------------------------------------------------------


@dataclass
class FaultLog:
    injected: list = field(default_factory=list)
    uploads_tried_while_hanging: int = 0
    uploads_tried_before_a_cooldown_could_end: int = 0
    hang_seconds: float = 0
    connections_dropped: int = 0
    breaker_seen_in_redis: bool = False
    s3_refused: tuple = (0, 0)  # (from, to) in time.monotonic()
    kills: list = field(default_factory=list)  # (pid or None, (from, to)): looking for a busy worker, killing it


def cloudinary_attempts_allowed(hang_seconds, uploaders=WORKERS):
    """How many uploads may reach a hanging Cloudinary in ``hang_seconds``, by the breaker's
    contract with its state shared by every worker (through Redis), starting closed.

    Each of the ``WORKERS`` handles one request at a time, and an attempt at a hanging
    provider fails no sooner than ``STORAGE_TIMEOUT``. Before the breaker first opens,
    ``BREAKER_FAILURES`` attempts fail and at most one more per other worker is under
    way. Then it stays open ``BREAKER_COOLDOWN`` seconds; the failures stay counted, so
    after each cool-down one failure opens it again: at most one attempt per worker gets
    through. A cool-down ends at the soonest ``STORAGE_TIMEOUT + BREAKER_COOLDOWN`` after
    the previous closed spell began. (A half-open breaker lets one trial through after a
    cool-down: fewer still.) Without a breaker, or with one per process, each worker
    tries about every ``STORAGE_TIMEOUT``.

    With a Celery worker, its pool's processes store posters through the chain too:
    ``uploaders`` counts them with the gunicorn workers.
    """
    cooldowns_ended = int(hang_seconds // (STORAGE_TIMEOUT + BREAKER_COOLDOWN))
    return BREAKER_FAILURES + (uploaders - 1) + uploaders * cooldowns_ended


def drop_idle_database_connections():
    """Terminate the site's connections idle for over half a second, as a database restart
    or a pooler's idle timeout would. A request's own queries are never that far apart,
    except around an upload (which the site checks its connection after)."""
    database = django_settings.DATABASES["default"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        own_pid = cursor.fetchone()[0]
    with psycopg.connect(
        host=database["HOST"], port=database["PORT"], user=database["USER"], dbname="postgres", autocommit=True
    ) as admin:
        return admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = %s AND state = 'idle' AND state_change < now() - interval '0.5 seconds'"
            " AND pid <> %s",
            [database["NAME"], own_pid],
        ).fetchone()[0]


def inject_faults(stack, stop, log, scale, ledger):
    def pause(seconds):
        stop.wait(seconds * scale)

    stack.cloudinary.fail("http_500", actions=["upload"], probability=0.3, seed=11)
    log.injected.append("Cloudinary failing 30% of uploads (before and after its hang)")
    pause(6)

    # Cloudinary healthy for longer than a cool-down: every worker's breaker closes,
    # wherever it is kept, so that the hang meets uploads.
    stack.cloudinary.heal()
    stop.wait(BREAKER_COOLDOWN + 2)
    started = time.monotonic()
    stack.redis.flush()  # every breaker closed, no failure counted: the hang must meet uploads
    before = stack.cloudinary.requests["upload"]
    stack.cloudinary.fail("hang", actions=["upload"])  # every upload: none fails sooner than the timeout
    log.injected.append(f"Cloudinary hanging past the {STORAGE_TIMEOUT} s timeout on every upload")
    deadline = started + 8 * scale
    next_drop = started + 0.5
    while time.monotonic() < deadline and not stop.is_set():
        if time.monotonic() < started + STORAGE_TIMEOUT + BREAKER_COOLDOWN:
            log.uploads_tried_before_a_cooldown_could_end = stack.cloudinary.requests["upload"] - before
        if any("breaker:cloudinary:open_until" in key for key in stack.redis.keys()):
            log.breaker_seen_in_redis = True
        if time.monotonic() >= next_drop:
            # Uploads waiting on the hanging provider hold idle connections: drop them.
            log.connections_dropped += drop_idle_database_connections()
            next_drop += 0.5
        time.sleep(0.2)
    log.uploads_tried_while_hanging = stack.cloudinary.requests["upload"] - before
    log.hang_seconds = time.monotonic() - started
    log.injected.append(f"{log.connections_dropped} database connections dropped during uploads")
    stack.cloudinary.heal()
    stack.cloudinary.fail("http_500", actions=["upload"], probability=0.3, seed=12)
    pause(2)

    refused_from = time.monotonic()
    stack.s3_proxy.set_mode("refuse")
    log.injected.append("S3 refusing connections")
    pause(6)
    log.s3_refused = (refused_from, time.monotonic())
    stack.s3_proxy.set_mode("pass")
    pause(2)

    # A worker still tidying up after its answer went out looks busy too: kill another then.
    for _ in range(5):
        killing_from = time.monotonic()
        pid = stack.site.kill_a_busy_worker()
        log.kills.append((pid, (killing_from, time.monotonic())))
        stop.wait(1)
        if pid is None or ledger.cut_by([window for _, window in log.kills], stack.site.url):
            break
    log.injected.append(f"gunicorn workers {[pid for pid, _ in log.kills]} killed with SIGKILL in the middle of requests")
    pause(3)
    stack.cloudinary.heal()


def during(started, ended, window):
    """Whether a request from ``started`` to ``ended`` overlapped ``window`` (from, to)."""
    return started <= window[1] and ended >= window[0]


def during_one(started, ended, windows):
    return any(during(started, ended, window) for window in windows)


# -- the test --------------------------------------------------------------------


def test_no_upload_is_lost_and_no_file_is_orphaned_under_faults(stack, soak):
    check_no_upload_lost_and_no_file_orphaned(stack, soak)


def test_no_upload_is_lost_and_no_file_is_orphaned_under_faults_with_a_worker(stack_with_worker, soak):
    check_no_upload_lost_and_no_file_orphaned(stack_with_worker, soak)


def wait_for_processing(stack):
    """Wait until the worker has ended the processing of every video, for as long as it
    keeps ending some: the load leaves it a backlog. Returns how many videos were still
    pending when the load stopped."""
    pending = Video.objects.filter(processing="pending")
    backlog = left = pending.count()
    stalled_since = time.monotonic()
    while left:
        if time.monotonic() - stalled_since > PROCESSING_STALL:
            raise AssertionError(f"{left} videos still pending, none processed for {PROCESSING_STALL} s:\n"
                                 f"{stack.worker.log()[-4000:]}")
        time.sleep(0.5)
        now_left = pending.count()
        if now_left < left:
            stalled_since = time.monotonic()
        left = now_left
    return backlog


def check_no_upload_lost_and_no_file_orphaned(stack, soak):
    clients = make_clients(24 if soak else 8)
    scale = 10 if soak else 1
    ledger, faults, stop = Ledger(), FaultLog(), threading.Event()

    threads = [
        threading.Thread(
            target=run_client, args=(stack.site.url, token, ledger, stop, number, stack.real_clip), daemon=True
        )
        for number, (_, token) in enumerate(clients)
    ]
    for thread in threads:
        thread.start()
    inject_faults(stack, stop, faults, scale, ledger)
    stop.set()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads), "a client is stuck"
    if stack.worker is not None:
        # The posters the worker stores are files like any other: let it finish first.
        backlog = wait_for_processing(stack)

    # Every 201 is a video whose bytes are where its row says.
    lost = []
    for video_id, digests in ledger.videos.items():
        video = Video.objects.filter(pk=video_id).first()
        if video is None:
            lost.append(video_id)
            continue
        assert video.storage_provider == video.file.name.partition(":")[0]
        if stored_digest(video.file.name) not in digests:
            lost.append(video_id)
    # A refused upload left no row.
    assert not Video.objects.filter(title__in=ledger.refused_titles).exists()
    # Rows nobody was told about come only from requests that got no answer.
    told = set(ledger.videos) | ledger.unanswered_deletes
    unexplained = Video.objects.exclude(pk__in=told).exclude(title__in=ledger.unanswered_uploads)
    assert list(unexplained.values_list("title", flat=True)) == []

    # Before any housekeeping, a file no video uses is only one whose removal is queued,
    # or one a request killed with its worker may have left.
    queued = set(PendingDeletion.objects.values_list("name", flat=True))
    left_over = stack.stored_names() - referenced_names() - queued
    orphans = {name for name in left_over if stored_digest(name) not in ledger.unanswered_digests}
    # Housekeeping then leaves every provider holding exactly what the videos use.
    out = StringIO()
    call_command("retry_deletions", "--all", stdout=out)
    call_command("cleanup_orphans", "--older-than", "0", "--delete", stdout=out)
    orphans_after = stack.stored_names() - referenced_names()
    missing = referenced_names() - stack.stored_names()

    # A worker was killed in the middle of a request, and only requests under way then
    # went unanswered.
    kills = [window for _, window in faults.kills]
    cut_by_the_kill = ledger.cut_by(kills, stack.site.url)
    unexplained_silences = [what for started, ended, what in ledger.unanswered if not during_one(started, ended, kills)]
    # A read fails only while the provider it reads from is faulted.
    unexplained_failed_reads = [
        (url, reason)
        for started, ended, url, reason in ledger.failed_reads
        if not (url.startswith(stack.s3_proxy.url) and during(started, ended, faults.s3_refused))
        and not (url.startswith(stack.site.url) and during_one(started, ended, kills))
    ]
    # While S3 refused, uploads that Cloudinary failed landed on local disk.
    landed_while_s3_refused = Counter(
        provider
        for started, ended, provider in ledger.landings
        if faults.s3_refused[0] <= started and ended <= faults.s3_refused[1]
    )

    # The breaker was shared: once tripped, no worker kept trying the hanging primary.
    uploaders = WORKERS + (CELERY_CONCURRENCY if stack.worker is not None else 0)
    allowed_while_hanging = cloudinary_attempts_allowed(faults.hang_seconds, uploaders)
    allowed_before_a_cooldown_could_end = cloudinary_attempts_allowed(0, uploaders)

    server_errors = sum(count for status, count in ledger.statuses.items() if isinstance(status, int) and status >= 500)
    print(
        f"\nreliability: {ledger.requests} requests, {len(clients)} clients, faults: {'; '.join(faults.injected)}"
        f"\n  uploads landed per provider: {dict(ledger.landed)}; while S3 refused: {dict(landed_while_s3_refused)}"
        f"\n  statuses: {dict(ledger.statuses)}; failed reads: {len(ledger.failed_reads)};"
        f" cut by the kill: {cut_by_the_kill}"
        f"\n  Cloudinary uploads tried while it hung: {faults.uploads_tried_while_hanging}"
        f" (at most {allowed_while_hanging}), {faults.uploads_tried_before_a_cooldown_could_end} of them before"
        f" a cool-down could end (at most {allowed_before_a_cooldown_could_end})"
        f"\n  lost {len(lost)}, orphans {len(orphans)} before housekeeping ({len(left_over) - len(orphans)} more"
        f" left by requests without an answer, {len(queued)} queued removals), {len(orphans_after)} after,"
        f" missing {len(missing)}, 5xx {server_errors},"
        f" read mismatches {len(ledger.read_mismatches)}"
    )
    assert lost == []
    assert orphans == set(), f"files no video uses, left by requests that were answered:\n{log_lines_about(stack, orphans)}"
    assert orphans_after == set() and missing == set()
    assert server_errors == 0, server_error_reports(stack.site.log())
    assert ledger.read_mismatches == []
    assert unexplained_failed_reads == []
    assert None not in [pid for pid, _ in faults.kills], "no worker was busy to be killed"
    assert cut_by_the_kill, "the killed worker was in the middle of a request"
    assert unexplained_silences == []
    assert faults.uploads_tried_before_a_cooldown_could_end <= allowed_before_a_cooldown_could_end
    assert faults.uploads_tried_while_hanging <= allowed_while_hanging
    assert faults.breaker_seen_in_redis
    assert faults.connections_dropped > 0, "the database fault should have hit connections"
    assert landed_while_s3_refused["local"] > 0 and landed_while_s3_refused["s3"] == 0
    assert ledger.landed["cloudinary"] and ledger.landed["s3"], "faults should spread uploads over providers"
    assert ledger.statuses[201] >= 20
    if stack.worker is not None:
        check_processed_by_the_worker(stack, ledger, backlog)


def check_processed_by_the_worker(stack, ledger, backlog):
    """Every real video the clients were told about has its duration and a poster that
    plays, cut by the worker; uploads answered before their processing ended."""
    real = Video.objects.filter(pk__in=ledger.real_videos)
    undone = {video.pk: (video.processing, video.processing_error) for video in real if video.processing != "done"}
    wrong_duration = {
        video.pk: (video.duration_seconds, video.file.name, video.processing_error)
        for video in real
        if video.duration_seconds is None or abs(video.duration_seconds - REAL_VIDEO_SECONDS) > 0.5
    }
    without_poster = [video.pk for video in real if services.poster_url(video) is None]
    posters_cut = [video for video in real if video.thumbnail_generated]
    print(
        f"  worker: {real.count()} real videos, {len(posters_cut)} posters cut and stored by the worker,"
        f" {backlog} still pending when the load stopped; {stack.worker.log().count('succeeded in')} jobs succeeded"
    )
    assert real.count() >= 5, "the load should have uploaded real videos"
    assert set(ledger.processing_answered) == {"pending"}, ledger.processing_answered  # none waited for it
    assert undone == {}
    assert wrong_duration == {}, worker_lines_about(stack, [name for _, name, _ in wrong_duration.values()])
    assert without_poster == []
    assert posters_cut, "some real videos landed off Cloudinary and needed a poster file"
    assert all(stored_digest(video.thumbnail.name) for video in posters_cut)  # each poster is readable


def worker_lines_about(stack, names):
    keys = [name.rpartition("/")[2].partition(".")[0] for name in names]
    return "\n".join(line for line in stack.worker.log().splitlines() if any(key in line for key in keys))


def log_lines_about(stack, names):
    """The lines of gunicorn's log, and the worker's, that name one of the stored files ``names``."""
    keys = [name.rpartition("/")[2].partition(".")[0] for name in names]
    logs = {"gunicorn": stack.site.log(), "worker": stack.worker.log() if stack.worker is not None else ""}
    return "\n".join(
        f"{source}: {line}" for source, log in logs.items() for line in log.splitlines() if any(key in line for key in keys)
    ) or f"{sorted(names)}: no log line names them"


def stored_digest(name):
    """The sha256 of a stored file, read back from the provider that holds it."""
    with default_storage.open(name) as stored:
        return sha256(stored.read())


# -- hostile and malformed requests ----------------------------------------------


def raw_request(base_url, head, body=b""):
    """Send bytes as they are (no client library to tidy them up); ``(status, body)``."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(head.encode("latin-1") + body)
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    response = b"".join(chunks)
    status_line, _, rest = response.partition(b"\r\n")
    status = int(status_line.split()[1]) if status_line.startswith(b"HTTP/") else 0
    return status, rest.partition(b"\r\n\r\n")[2]


def http_head(method, path, headers, length=None):
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return "\r\n".join(lines) + "\r\n\r\n"


def multipart(fields, boundary="stremoraboundary"):
    parts = []
    for name, value in fields.items():
        if isinstance(value, tuple):
            filename, content, content_type = value
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                f"Content-Type: {content_type}\r\n\r\n".encode() + content + b"\r\n"
            )
        else:
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def hostile_requests(token, other_token, victim_id):
    """``(name, head, body)`` of each hostile request; every one must get a 4xx."""
    auth = ("Authorization", f"Token {token}")
    good_video = ("clip.mp4", MP4_HEADER + b"\0" * 2000, "video/mp4")
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 200
    cases = []

    def post(name, fields, headers=(auth,), path="/api/videos/", method="POST"):
        body, content_type = multipart(fields)
        cases.append((name, http_head(method, path, [*headers, ("Content-Type", content_type)], len(body)), body))

    def send(name, method, path, headers=(auth,), body=b"", length="auto"):
        cases.append((name, http_head(method, path, list(headers), len(body) if length == "auto" else length), body))

    body, content_type = multipart({"title": "x", "file": good_video})
    send("multipart body not matching its boundary", "POST", "/api/videos/",
         [auth, ("Content-Type", "multipart/form-data; boundary=other")], body)
    send("multipart without a boundary", "POST", "/api/videos/", [auth, ("Content-Type", "multipart/form-data")], body)
    send("multipart cut before its end", "POST", "/api/videos/", [auth, ("Content-Type", content_type)], body[: len(body) // 2])
    send("Content-Length shorter than the body", "POST", "/api/videos/", [auth, ("Content-Type", content_type)], body, length=40)
    send("Content-Length far over the limit", "POST", "/api/videos/", [auth, ("Content-Type", content_type)], b"", length=50 * 1024 * 1024)
    send("Content-Length not a number", "POST", "/api/videos/", [auth, ("Content-Type", content_type)], b"", length="lots")
    send("negative Content-Length", "POST", "/api/videos/", [auth, ("Content-Type", content_type)], b"", length=-5)
    send("Content-Length and chunked together", "POST", "/api/videos/",
         [auth, ("Content-Type", content_type), ("Transfer-Encoding", "chunked")], b"5\r\nhello\r\n0\r\n\r\n")
    send("broken chunked encoding", "POST", "/api/videos/",
         [auth, ("Content-Type", content_type), ("Transfer-Encoding", "chunked")], b"zz\r\nhello\r\n", length=None)
    send("text/plain body", "POST", "/api/videos/", [auth, ("Content-Type", "text/plain")], b"title=x")
    send("XML body", "POST", "/api/videos/", [auth, ("Content-Type", "application/xml")], b"<video/>")
    send("malformed JSON", "POST", "/api/videos/", [auth, ("Content-Type", "application/json")], b'{"title": ')
    send("JSON with the file as a string", "POST", "/api/videos/", [auth, ("Content-Type", "application/json")],
         b'{"title": "x", "file": "/etc/passwd"}')
    send("a 16 KB header", "GET", "/api/videos/", [auth, ("X-Padding", "a" * 16384)])
    send("two hundred headers", "GET", "/api/videos/", [auth, *[(f"X-H{number}", "v") for number in range(200)]])
    send("a 10 KB URL", "GET", "/api/videos/?search=" + "a" * 10240)
    send("an unknown method", "BREW", "/api/videos/")
    send("PUT on the list", "PUT", "/api/videos/")
    send("another user's token changing my video", "PATCH", f"/api/videos/{victim_id}/",
         [("Authorization", f"Token {other_token}"), ("Content-Type", "application/json")], b'{"title": "taken"}')
    send("another user's token deleting my video", "DELETE", f"/api/videos/{victim_id}/",
         [("Authorization", f"Token {other_token}")])
    post("upload with a made-up token", {"title": "x", "file": good_video}, headers=[("Authorization", "Token " + "0" * 40)])
    post("upload with a malformed Authorization header", {"title": "x", "file": good_video}, headers=[("Authorization", "Token")])
    post("upload with no credentials", {"title": "x", "file": good_video}, headers=[])
    post("an executable with a video extension inside", {"title": "x", "file": ("setup.mp4.exe", MP4_HEADER + b"\0" * 100, "video/mp4")})
    post("a PNG named .mp4", {"title": "x", "file": ("clip.mp4", png, "video/mp4")})
    post("an HTML page named .mp4", {"title": "x", "file": ("clip.mp4", b"<html><script>alert(1)</script>" * 20, "video/mp4")})
    post("an empty file", {"title": "x", "file": ("clip.mp4", b"", "video/mp4")})
    post("a file over MAX_UPLOAD_MB", {"title": "x", "file": ("big.mp4", MP4_HEADER + b"\0" * (5 * 1024 * 1024 + 1), "video/mp4")})
    post("no title", {"file": good_video})
    post("a 10,000-character title", {"title": "t" * 10000, "file": good_video})
    post("a NUL byte in the title", {"title": "bad\x00title", "file": good_video})
    post("is_published not a boolean", {"title": "x", "file": good_video, "is_published": "yes please"})
    post("a thumbnail that is not an image", {"title": "x", "file": good_video, "thumbnail": ("t.jpg", b"nope", "image/jpeg")})
    send("a filter value outside the choices", "GET", "/api/videos/?storage_provider=ftp")
    send("a page that is not a number", "GET", "/api/videos/?page=abc")
    send("a video that does not exist", "GET", "/api/videos/999999999/")
    send("a video id that is not a number", "GET", "/api/videos/abc/")
    send("path traversal under /media/", "GET", "/media/..%2F..%2F..%2Fetc%2Fpasswd")
    cases.append(("a Host header not allowed", "GET /api/videos/ HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n", b""))
    return cases


def test_hostile_requests_get_a_clean_4xx_and_store_nothing(stack, settings, user, django_user_model):
    token = Token.objects.create(user=user).key
    other = django_user_model.objects.create_user("intruder", password=secrets.token_urlsafe(12))
    other_token = Token.objects.create(user=other).key
    http = urllib3.PoolManager(retries=False)
    victim = http.request(
        "POST", stack.site.url + "/api/videos/", headers={"Authorization": f"Token {token}"},
        fields={"title": "Mine", "is_published": "true", "file": ("clip.mp4", MP4_HEADER + b"\0" * 2000, "video/mp4")},
    )
    assert victim.status == 201
    victim_id = json.loads(victim.data)["id"]
    rows, files = Video.objects.count(), stack.stored_names()
    secrets_in_play = [settings.AWS_SECRET_ACCESS_KEY, stack.cloudinary.api_secret, "Traceback", "/work/", "django."]

    cases = hostile_requests(token, other_token, victim_id)
    results = {name: raw_request(stack.site.url, head, body) for name, head, body in cases}

    assert len(cases) >= 30
    assert results["another user's token changing my video"][0] == 403
    assert results["another user's token deleting my video"][0] == 403
    wrong = {name: status for name, (status, _) in results.items() if not 400 <= status < 500}
    assert wrong == {}, stack.site.log()[-3000:]
    leaky = [name for name, (_, body) in results.items() if any(secret.encode() in body for secret in secrets_in_play)]
    assert leaky == []
    assert Video.objects.count() == rows
    assert Video.objects.get(pk=victim_id).title == "Mine"
    assert stack.stored_names() == files
    print(f"\nhostile requests: {len(cases)}, statuses {dict(Counter(status for status, _ in results.values()))}")


def test_hostile_names_and_titles_are_stored_safely(stack, user):
    token = Token.objects.create(user=user).key
    http = urllib3.PoolManager(retries=False)

    response = http.request(
        "POST", stack.site.url + "/api/videos/", headers={"Authorization": f"Token {token}"},
        fields={
            "title": "<script>alert(1)</script>",
            "is_published": "true",
            "file": ("../../../etc/cron.d/evil.mp4", MP4_HEADER + b"\0" * 2000, "video/mp4"),
        },
    )

    assert response.status == 201
    video = Video.objects.get()
    key = video.file.name.partition(":")[2]
    assert key.startswith("videos/") and ".." not in key and "/etc/" not in key
    page = http.request("GET", stack.site.url + "/").data.decode()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
