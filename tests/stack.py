"""The real stack on loopback for the reliability suite: Redis, gunicorn and Celery
workers, as processes.

PostgreSQL is the test run's server, S3 is moto's server (``tests.s3_server``) behind a
``FaultProxy``, Cloudinary is ``tests.cloudinary_server``: the suite wires them together.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from tests.s3_server import free_port

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 30
# The suite's workers (tests.worker_app): seconds before Redis hands a dead worker's
# job to another, and how many times shorter automatic retries wait than deployed.
VISIBILITY_TIMEOUT = 12
RETRY_TIME_SCALE = 10


def wait_until(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not happen within {timeout} s")


class RedisServer:
    def __init__(self):
        self.port = free_port()
        self._directory = tempfile.mkdtemp(prefix="stremora-redis-")
        self._process = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self._process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self._directory],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._answers, START_TIMEOUT, f"Redis answering on port {self.port}")
        return self

    def _answers(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as connection:
                connection.sendall(b"PING\r\n")
                return connection.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def flush(self):
        import redis

        redis.Redis(port=self.port).flushdb()

    def keys(self, pattern="*"):
        import redis

        return sorted(key.decode() for key in redis.Redis(port=self.port).keys(pattern))

    def stop(self):
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None
        shutil.rmtree(self._directory, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()


class GunicornServer:
    """Stremora served by gunicorn with several workers, configured by ``environment``;
    ``application`` names another WSGI application (``tests.static_wsgi``: with its
    static files, for a browser); ``options`` are more of gunicorn's command-line options."""

    def __init__(self, environment, workers=3, timeout=60, application="stremora.wsgi:application", options=()):
        self.application = application
        self.options = tuple(options)
        self.port = free_port()
        self.workers = workers
        self.timeout = timeout
        self.environment = environment
        self._process = None
        self._log = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        self._log = tempfile.NamedTemporaryFile(prefix="stremora-gunicorn-", suffix=".log", delete=False)
        self._process = subprocess.Popen(
            [
                sys.executable, "-m", "gunicorn", self.application,
                "--bind", f"127.0.0.1:{self.port}",
                "--workers", str(self.workers),
                "--timeout", str(self.timeout),
                "--graceful-timeout", "5",
                *self.options,
            ],
            cwd=ROOT,
            env=self.environment,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        wait_until(self._answers, START_TIMEOUT, "gunicorn answering")
        wait_until(lambda: len(self.worker_pids()) == self.workers, START_TIMEOUT, "every gunicorn worker up")
        return self

    def _answers(self):
        if self._process.poll() is not None:
            raise RuntimeError(f"gunicorn exited:\n{self.log()}")
        try:
            with urllib.request.urlopen(f"{self.url}/api/health/", timeout=2):
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False

    def worker_pids(self):
        children = Path(f"/proc/{self._process.pid}/task/{self._process.pid}/children")
        try:
            return [int(pid) for pid in children.read_text().split()]
        except OSError:
            return []

    def busy_worker_pids(self):
        """The workers holding a client's connection: those in the middle of a request."""
        accepted = {f"socket:[{inode}]" for inode in established_socket_inodes(self.port)}
        busy = []
        for pid in self.worker_pids():
            try:
                descriptors = os.listdir(f"/proc/{pid}/fd")
                links = {os.readlink(f"/proc/{pid}/fd/{descriptor}") for descriptor in descriptors}
            except OSError:
                continue  # the worker is gone
            if links & accepted:
                busy.append(pid)
        return busy

    def kill_a_busy_worker(self, timeout=10):
        """SIGKILL a worker in the middle of a request, as the kernel's OOM killer would;
        gunicorn starts another. Returns its pid, or None if no worker was busy in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for pid in self.busy_worker_pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
                return pid
            time.sleep(0.01)
        return None

    def log(self):
        if self._log is None:
            return ""
        with open(self._log.name, errors="replace") as log:
            return log.read()

    def stop(self):
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._log is not None:
            os.unlink(self._log.name)
            self._log = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()


class CeleryWorker:
    """``celery -A stremora worker`` as a process group of its own, configured by
    ``environment`` (its ``CELERY_BROKER_URL`` names the broker), under a hostname no
    other worker of the run shares; ``app`` is the module ``-A`` names (the suite's
    ``tests.worker_app`` gives killed workers' jobs back within seconds).

    ``kill()`` is SIGKILL to the whole group, the pool's children with their main
    process, as the kernel's OOM killer or a lost machine would end them: nothing
    acknowledges or hands back the job under way.
    """

    def __init__(self, environment, concurrency=1, pool="prefork", name="worker", app="stremora"):
        self.app = app
        self.environment = environment
        self.concurrency = concurrency
        self.pool = pool
        self.hostname = f"{name}-{uuid.uuid4().hex[:8]}@127.0.0.1"
        self._process = None
        self._log = None

    def start(self):
        self._log = tempfile.NamedTemporaryFile(prefix="stremora-celery-", suffix=".log", delete=False)
        self._process = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", self.app, "worker",
                "--pool", self.pool,
                "--concurrency", str(self.concurrency),
                "--hostname", self.hostname,
                "--loglevel", "INFO",
                "--without-gossip", "--without-mingle", "--without-heartbeat",
            ],
            cwd=ROOT,
            env=self.environment,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, children included
        )
        wait_until(self._ready, START_TIMEOUT, f"Celery worker {self.hostname} ready")
        return self

    def _ready(self):
        if self._process.poll() is not None:
            raise RuntimeError(f"the Celery worker exited:\n{self.log()}")
        return f"{self.hostname} ready." in self.log()

    @property
    def pid(self):
        return self._process.pid

    def pool_pids(self):
        """The pids of the pool's processes (none with ``--pool solo``)."""
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        try:
            return [int(pid) for pid in children.read_text().split()]
        except OSError:
            return []

    def kill(self):
        """SIGKILL the worker and its pool at once; returns the pids that were killed."""
        pids = [self.pid, *self.pool_pids()]
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._process.wait(timeout=10)
        wait_until(lambda: not any(is_running(pid) for pid in pids), 10, "the killed worker's processes gone")
        return pids

    def log(self):
        if self._log is None:
            return ""
        with open(self._log.name, errors="replace") as log:
            return log.read()

    def stop(self):
        """A warm shutdown (SIGTERM: the job under way finishes first), SIGKILL past 30 s."""
        if self._process is not None:
            if self._process.poll() is None:
                self._process.terminate()
                try:
                    self._process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    pass
            try:
                os.killpg(self._process.pid, signal.SIGKILL)  # any pool process left behind
            except ProcessLookupError:
                pass
            self._process.wait()
            self._process = None
        if self._log is not None:
            os.unlink(self._log.name)
            self._log = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()


def is_running(pid):
    """Whether ``pid`` is a live process (a zombie waiting for its parent is not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def established_socket_inodes(port):
    """Inodes of the established TCP connections whose local end is ``port`` (accepted ones)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local_address, state, inode = fields[1], fields[3], fields[9]
            if state == "01" and int(local_address.rpartition(":")[2], 16) == port:  # 01: ESTABLISHED
                inodes.add(inode)
    return inodes


def database_url():
    """A URL of the database this test run uses, for processes started by the suite."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    return f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"


def site_environment(*, secret_key, media_root, providers="local", cloudinary=None, s3_url=None, s3_settings=None,
                     bucket=None, **variables):
    """The environment of a server process the suite starts: this run's database, no
    dotenv file, DEBUG off, ``providers`` (with the Cloudinary test server and an S3
    endpoint where they are named), and any further ``variables``."""
    environment = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG", "TMPDIR")}
    environment.update(
        STREMORA_ENV_FILE="",
        SECRET_KEY=secret_key,
        DEBUG="false",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        DATABASE_URL=database_url(),
        STORAGE_PROVIDERS=providers,
        MEDIA_ROOT=str(media_root),
    )
    if cloudinary is not None:
        environment.update(
            CLOUDINARY_URL=cloudinary.cloudinary_url,
            CLOUDINARY_UPLOAD_PREFIX=cloudinary.url,
            CLOUDINARY_DELIVERY_PREFIX=cloudinary.url,
        )
    if s3_url is not None:
        environment.update(
            AWS_ACCESS_KEY_ID=s3_settings.AWS_ACCESS_KEY_ID,
            AWS_SECRET_ACCESS_KEY=s3_settings.AWS_SECRET_ACCESS_KEY,
            AWS_S3_BUCKET_NAME=bucket,
            AWS_S3_ENDPOINT_URL=s3_url,
        )
    environment.update({name: str(value) for name, value in variables.items()})
    return environment
