"""The README's first steps, in order, on a fresh copy of the project, as a newcomer takes them.

The copy holds what a clone would (the tracked files and new ones not ignored, as they
are now) and nothing of this shell's settings. The suite's virtualenv stands in for
the one ``scripts/run`` would make, so nothing is downloaded; ``test_requirements``
checks that the runtime set alone runs the server.
"""

import json
import os
import shutil
import signal
import stat
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.s3_server import free_port

ROOT = Path(__file__).resolve().parent.parent
# scripts/run migrates a new SQLite database and starts Django's server: seconds, more
# on a loaded two-CPU machine.
SERVE_TIMEOUT = 120
COMMAND_TIMEOUT = 120


def fresh_copy(destination):
    """The project as a clone of its working tree would be, with git's ignore rules."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    subprocess.run(["git", "init", "-q"], cwd=destination, check=True)
    (destination / ".venv").symlink_to(ROOT / ".venv")
    return destination


def newcomer_environment():
    """A login shell's variables only: no DEBUG, SECRET_KEY, DATABASE_URL or provider."""
    kept = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER")
    return {name: value for name, value in os.environ.items() if name in kept}


class Run:
    """``scripts/run HOST:PORT`` in its own process group, its output in a file."""

    def __init__(self, project, environment):
        self.project = project
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.output_path = project / f"run-{self.port}.log"
        with open(self.output_path, "wb") as output:
            self.process = subprocess.Popen(
                ["scripts/run", f"127.0.0.1:{self.port}"],
                cwd=project, env=environment, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
            )

    @property
    def output(self):
        return self.output_path.read_text(errors="replace")

    def wait_serving(self):
        deadline = time.monotonic() + SERVE_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"scripts/run stopped:\n{self.output}"
            try:
                with urllib.request.urlopen(self.url + "/", timeout=5) as response:
                    return response.status
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        raise AssertionError(f"scripts/run served nothing within {SERVE_TIMEOUT} s:\n{self.output}")

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def manage(project, environment, *args):
    return subprocess.run(
        [".venv/bin/python", "manage.py", *args],
        cwd=project, env=environment, capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
    )


def token_for(url, username, password):
    body = urllib.parse.urlencode({"username": username, "password": password}).encode()
    with urllib.request.urlopen(url + "/api/auth/token/", data=body, timeout=10) as response:
        return json.load(response)["token"]


@pytest.fixture
def project(tmp_path):
    return fresh_copy(tmp_path / "stremora")


def test_the_readme_steps_work_in_order_on_a_fresh_clone(project):
    environment = newcomer_environment()

    # 1. scripts/run serves the site.
    first = Run(project, environment)
    try:
        assert first.wait_serving() == 200
    finally:
        first.stop()

    # 2. The admin's first user, with no variable beyond the shell's: manage.py reads the
    # development .env that scripts/run wrote once.
    superuser = {
        **environment,
        "DJANGO_SUPERUSER_USERNAME": "admin",
        "DJANGO_SUPERUSER_EMAIL": "admin@example.com",
        "DJANGO_SUPERUSER_PASSWORD": "first-hour-password-1",
    }
    created = manage(project, superuser, "createsuperuser", "--noinput")
    assert created.returncode == 0, created.stdout + created.stderr
    checked = manage(project, environment, "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr

    dotenv = project / ".env"
    assert first.output.count("Wrote .env for development") == 1
    assert stat.S_IMODE(dotenv.stat().st_mode) == 0o600
    written = dotenv.read_text()
    assert "DEBUG=true" in written.splitlines()
    secret_key = next(line for line in written.splitlines() if line.startswith("SECRET_KEY="))
    assert len(secret_key) > len("SECRET_KEY=") + 40

    # 3. scripts/run again: the same .env, the same database, the user signs in.
    again = Run(project, environment)
    try:
        assert again.wait_serving() == 200
        assert token_for(again.url, "admin", "first-hour-password-1")
    finally:
        again.stop()
    assert "Wrote .env" not in again.output
    assert dotenv.read_text() == written

    # The files the steps made stay out of git.
    status = subprocess.run(
        ["git", "status", "--porcelain", "--ignored", "--", ".env", "db.sqlite3"],
        cwd=project, capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    assert sorted(status) == ["!! .env", "!! db.sqlite3"]


def test_scripts_run_leaves_an_existing_env_file_alone(project):
    dotenv = project / ".env"
    dotenv.write_text("DEBUG=true\nSECRET_KEY=the-operators-own-key-kept-as-it-is-0123456789\n")
    dotenv.chmod(0o640)

    run = Run(project, newcomer_environment())
    try:
        assert run.wait_serving() == 200
    finally:
        run.stop()

    assert "Wrote .env" not in run.output
    assert dotenv.read_text() == "DEBUG=true\nSECRET_KEY=the-operators-own-key-kept-as-it-is-0123456789\n"
    assert stat.S_IMODE(dotenv.stat().st_mode) == 0o640
