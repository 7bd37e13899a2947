"""Benchmarks of the background jobs (Celery workers on Redis) against the same work
done inline, on real servers on loopback, as ratios within one run.

    .venv/bin/python bench/jobs_bench.py              # both
    .venv/bin/python bench/jobs_bench.py upload --size-mib 64 --rounds 5
    .venv/bin/python bench/jobs_bench.py move --videos 20

upload  ``POST /api/videos/`` of a real 64 MiB MP4 to local disk, its duration and
        poster cut by a worker (``CELERY_BROKER_URL`` set: the request returns once the
        file is stored) against the same upload with them cut in the request (no
        broker: what every upload did before). Both on gunicorn with 3 sync workers,
        warmed up, rounds alternating; the worker column also says how long after the
        answer the poster was ready. Target: the request with a worker is faster.
move    the admin's "Move to S3" action on 20 videos (4 MiB each, local disk to S3
        on moto's server), the time of its POST: with a broker it enqueues one job per
        video and answers; target under 1 s. The baseline is the same action on 20
        other videos without a broker (the copies made inside the request); the worker
        column also says when the worker had moved them all.

Each setup runs on a PostgreSQL cluster the script starts and removes, with Redis
(``redis-server``) as the broker and one ``celery -A stremora worker`` (concurrency 1)
next to the gunicorn that has the broker. ffprobe and ffmpeg must be installed.

Prints one Markdown table, for the README. Not part of the test run.
"""

import argparse
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import BUCKET, FOREIGN_VARIABLES, MIB, S3_CREDENTIALS, SECRET_KEY  # noqa: E402

STAFF_PASSWORD = "bench-staff-password-1"


def real_video_of(directory, size):
    """A real MP4 made by ffmpeg (720p, about 20 s), grown to exactly ``size`` bytes by
    a trailing ``free`` box that every reader skips."""
    path = Path(directory) / "bench.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=duration=20:size=1280x720:rate=25",
         "-c:v", "libx264", "-preset", "ultrafast", "-qp", "12", "-pix_fmt", "yuv420p", str(path)],
        check=True, timeout=600,
    )
    padding = size - path.stat().st_size
    if padding < 8:
        raise ValueError(f"the MP4 is {path.stat().st_size} bytes, over {size}")
    with open(path, "ab") as handle:
        handle.write(struct.pack(">I", padding) + b"free")
        handle.truncate(size)
    return path


class Bench:
    """A throwaway PostgreSQL with a user (an API token) and a staff member, Redis, and
    the processes each benchmark starts, under ``workdir``."""

    def __init__(self, workdir):
        self.workdir = Path(workdir)
        self.token = None
        self.media_root = self.workdir / "media"
        self._postgres = None
        self.redis = None
        self._started = []

    def start(self):
        from bench.postgres import ThrowawayPostgres
        from tests.stack import RedisServer

        self._postgres = ThrowawayPostgres().start()
        self._postgres.create_database("stremora")
        self.redis = RedisServer().start()
        for name in FOREIGN_VARIABLES:
            os.environ.pop(name, None)
        os.environ.update(
            DJANGO_SETTINGS_MODULE="stremora.settings",
            STREMORA_ENV_FILE="",
            SECRET_KEY=SECRET_KEY,
            DATABASE_URL=self._postgres.url("stremora"),
            STORAGE_PROVIDERS="local",
            MEDIA_ROOT=str(self.media_root),
        )
        import django

        django.setup()
        from django.contrib.auth import get_user_model
        from django.core.management import call_command
        from rest_framework.authtoken.models import Token

        call_command("migrate", verbosity=0)
        user = get_user_model().objects.create_user("bench", password=None)
        self.token = Token.objects.create(user=user).key
        get_user_model().objects.create_superuser("staff", "staff@example.com", STAFF_PASSWORD)
        return self

    def environment(self, providers, *, broker, s3=None):
        from tests.stack import site_environment

        variables = {"CELERY_BROKER_URL": self.redis.url} if broker else {}
        return site_environment(
            secret_key=SECRET_KEY, media_root=self.media_root, providers=providers,
            s3_url=s3.url if s3 else None, s3_settings=S3_CREDENTIALS, bucket=BUCKET, **variables,
        )

    def gunicorn(self, environment):
        from tests.stack import GunicornServer

        server = GunicornServer(environment, workers=3, timeout=300).start()
        self._started.append(server)
        return server

    def worker(self, environment):
        from tests.stack import CeleryWorker

        worker = CeleryWorker(environment, name="bench").start()
        self._started.append(worker)
        return worker

    def stop_started(self):
        while self._started:
            self._started.pop().stop()

    def stop(self):
        self.stop_started()
        if self.redis is not None:
            self.redis.stop()
        if self._postgres is not None:
            from django.db import connections

            connections.close_all()
            self._postgres.stop()


def post_video(server, token, body, title):
    """``POST /api/videos/``: (seconds, the video the API answered with)."""
    import urllib3

    http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=5, read=300))
    start = time.perf_counter()
    response = http.request(
        "POST", server.url + "/api/videos/", headers={"Authorization": f"Token {token}"},
        fields={"title": title, "is_published": "true", "file": ("bench.mp4", body, "video/mp4")},
    )
    elapsed = time.perf_counter() - start
    if response.status != 201:
        raise RuntimeError(f"upload answered {response.status}: {response.data[:500]!r}\n{server.log()[-3000:]}")
    return elapsed, response.json()


def wait_for_processing(video_id, timeout=300):
    """Seconds until the video's processing job has ended (``processing`` done)."""
    from videos.models import Video

    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        video = Video.objects.get(pk=video_id)
        if video.processing != "pending":
            if video.processing != "done" or video.duration_seconds is None or not video.thumbnail:
                raise RuntimeError(f"processing ended {video.processing}: {video.processing_error}")
            return time.perf_counter() - start
        time.sleep(0.02)
    raise RuntimeError(f"video {video_id} still processing after {timeout} s")


# -- upload ----------------------------------------------------------------------


def bench_upload(bench, size_mib, rounds):
    path = real_video_of(bench.workdir, size_mib * MIB)
    body = path.read_bytes()
    inline = bench.gunicorn(bench.environment("local", broker=False))
    queued_environment = bench.environment("local", broker=True)
    queued = bench.gunicorn(queued_environment)
    bench.worker(queued_environment)
    try:
        timings = {"inline": [], "queued": []}
        ready_after = []
        for server in (inline, queued, inline, queued, inline, queued):  # warm-up: each worker process once, about
            _, video = post_video(server, bench.token, body, "Warm-up")
            if server is queued:
                wait_for_processing(video["id"])
        for round_number in range(rounds):
            order = ["inline", "queued"] if round_number % 2 == 0 else ["queued", "inline"]
            for kind in order:
                server = inline if kind == "inline" else queued
                seconds, video = post_video(server, bench.token, body, f"Bench {kind} {round_number}")
                timings[kind].append(seconds)
                if kind == "inline":
                    if video["duration_seconds"] is None or not video["thumbnail_url"]:
                        raise RuntimeError(f"the inline upload came back without its details: {video}")
                else:
                    if video["duration_seconds"] is not None or video["thumbnail_url"]:
                        raise RuntimeError(f"the queued upload came back with its details already: {video}")
                    ready_after.append(wait_for_processing(video["id"]))  # the worker idle before the next round
    finally:
        bench.stop_started()
    base, ours = statistics.median(timings["inline"]), statistics.median(timings["queued"])
    return {
        "what": f"POST /api/videos/ {size_mib} MiB MP4 to local disk ({rounds} rounds)",
        "baseline": f"poster and duration in the request {base:.2f} s",
        "worker": f"{ours:.2f} s (poster ready {statistics.median(ready_after):.2f} s after the answer)",
        "result": f"ratio {ours / base:.3f}",
        "target": "< 1.00",
        "ok": ours < base,
    }


# -- move ------------------------------------------------------------------------


def admin_session(server):
    import requests

    session = requests.Session()
    session.get(server.url + "/admin/login/", timeout=30)
    answer = session.post(
        server.url + "/admin/login/?next=/admin/",
        data={"username": "staff", "password": STAFF_PASSWORD, "csrfmiddlewaretoken": session.cookies["csrftoken"],
              "next": "/admin/"},
        allow_redirects=False, timeout=30,
    )
    if answer.status_code != 302:
        raise RuntimeError(f"the admin login answered {answer.status_code}")
    return session


def move_action(server, video_ids):
    """POST the changelist's "Move to S3" on ``video_ids``: (seconds, the message shown)."""
    session = admin_session(server)
    changelist = server.url + "/admin/videos/video/"
    session.get(changelist, timeout=30)
    data = {"action": "move_to_s3", "_selected_action": [str(pk) for pk in video_ids], "index": "0",
            "csrfmiddlewaretoken": session.cookies["csrftoken"]}
    start = time.perf_counter()
    answer = session.post(changelist, data=data, allow_redirects=False, timeout=600)
    elapsed = time.perf_counter() - start
    if answer.status_code != 302:
        raise RuntimeError(f"the action answered {answer.status_code}: {answer.text[:500]}")
    page = session.get(changelist, timeout=30).text
    return elapsed, page


def make_local_videos(count, size):
    from django.contrib.auth import get_user_model

    from tests.factories import video_upload
    from videos import services

    owner = get_user_model().objects.get(username="bench")
    return [
        services.create_video(owner=owner, title=f"To move {number}", file=video_upload(size=size)).pk
        for number in range(count)
    ]


def bench_move(bench, count):
    from django.conf import settings

    from tests.s3_server import MotoServer
    from videos.models import Video

    with MotoServer() as moto:
        moto.client().create_bucket(Bucket=BUCKET)
        settings.STORAGE_PROVIDERS = ["local"]  # the videos start on local disk
        inline_ids, queued_ids = make_local_videos(count, 4 * MIB), make_local_videos(count, 4 * MIB)
        inline = bench.gunicorn(bench.environment("local,s3", broker=False, s3=moto))
        queued_environment = bench.environment("local,s3", broker=True, s3=moto)
        queued = bench.gunicorn(queued_environment)
        bench.worker(queued_environment)
        try:
            base, _ = move_action(inline, inline_ids)
            if Video.objects.filter(pk__in=inline_ids, storage_provider="s3").count() != count:
                raise RuntimeError("the inline action did not move every video")
            ours, page = move_action(queued, queued_ids)
            if f"Queued {count} video" not in page:
                raise RuntimeError("the queued action did not say it queued every video")
            start = time.perf_counter()
            while Video.objects.filter(pk__in=queued_ids, storage_provider="s3").count() < count:
                if time.perf_counter() - start > 600:
                    raise RuntimeError("the worker did not move every video in 10 minutes")
                time.sleep(0.1)
            all_moved = ours + time.perf_counter() - start
        finally:
            bench.stop_started()
    return {
        "what": f"admin \"Move to S3\" on {count} videos of 4 MiB (local disk to moto's server)",
        "baseline": f"copies in the request {base:.2f} s",
        "worker": f"{ours:.3f} s (all moved {all_moved:.1f} s after the click)",
        "result": f"{ours:.3f} s",
        "target": "< 1 s",
        "ok": ours < 1,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", nargs="?", default="all", choices=["all", "upload", "move"])
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--videos", type=int, default=20)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="stremora-jobs-bench-"))
    os.environ["TMPDIR"] = str(workdir / "tmp")
    (workdir / "tmp").mkdir()
    for folder in (workdir, workdir / "tmp"):
        folder.chmod(0o711)  # PostgreSQL's cluster is in there, run by its own user when this runs as root
    tempfile.tempdir = None
    bench = Bench(workdir)
    rows = []
    try:
        bench.start()
        if args.which in ("all", "upload"):
            rows.append(bench_upload(bench, args.size_mib, args.rounds))
        if args.which in ("all", "move"):
            rows.append(bench_move(bench, args.videos))
    finally:
        bench.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    print("| benchmark | baseline | with a worker | result | target | met |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        met = "yes" if row["ok"] else "NO"
        print(f"| {row['what']} | {row['baseline']} | {row['worker']} | {row['result']} | {row['target']} | {met} |")
    return 0 if all(row["ok"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
