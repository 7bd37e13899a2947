"""requirements.txt installs what Stremora runs on and nothing only the tests need.

The installed packages' metadata says what each requirement brings with it; the
runtime set is requirements.txt and everything it pulls in.
"""

import ast
import importlib.metadata
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.s3_server import free_port

ROOT = Path(__file__).resolve().parent.parent
FIRST_PARTY = {"stremora", "videos", "storage_backends", "stremora_client", "tests", "bench"}
# What production runs: the code of these packages, and manage.py.
RUNTIME_CODE = ("stremora", "videos", "storage_backends", "stremora_client", "manage.py")
TEST_TOOLS = {"pytest", "pytest-django", "moto", "selenium"}
START_TIMEOUT = 60


def requirements_of(path):
    """The requirements a pip requirements file names, following ``-r`` includes."""
    found = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith(("-r ", "--requirement ")):
            found += requirements_of(path.parent / line.split(None, 1)[1])
        else:
            found.append(Requirement(line))
    return found


def installed_closure(requirements):
    """The canonical names of the distributions ``requirements`` install, dependencies included."""
    seen, pending = set(), [(requirement.name, frozenset(requirement.extras)) for requirement in requirements]
    while pending:
        name, extras = pending.pop()
        if (canonicalize_name(name), extras) in seen:
            continue
        seen.add((canonicalize_name(name), extras))
        for line in importlib.metadata.distribution(name).requires or []:
            dependency = Requirement(line)
            if dependency.marker is None or any(
                dependency.marker.evaluate({"extra": extra}) for extra in (extras or {""})
            ):
                pending.append((dependency.name, frozenset(dependency.extras)))
    return {name for name, _ in seen}


def runtime_set():
    return installed_closure(requirements_of(ROOT / "requirements.txt"))


def modules_the_runtime_code_imports():
    """Top-level modules imported by the runtime code, or named by the settings' apps and middleware."""
    files = [ROOT / "manage.py"] + [path for package in RUNTIME_CODE[:-1] for path in (ROOT / package).rglob("*.py")]
    modules = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules |= {alias.name.partition(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules.add(node.module.partition(".")[0])
    from django.conf import settings

    modules |= {dotted.partition(".")[0] for dotted in [*settings.INSTALLED_APPS, *settings.MIDDLEWARE]}
    return modules - set(sys.stdlib_module_names) - FIRST_PARTY


def test_requirements_txt_holds_no_test_tool():
    runtime = runtime_set()
    development = requirements_of(ROOT / "requirements-dev.txt")

    assert (ROOT / "requirements-dev.txt").read_text().splitlines()[:3].count("-r requirements.txt") == 1
    assert sorted(TEST_TOOLS & runtime) == []
    assert TEST_TOOLS <= {canonicalize_name(requirement.name) for requirement in development}


def test_every_module_the_runtime_code_imports_comes_with_requirements_txt():
    runtime = runtime_set()
    providers_of = importlib.metadata.packages_distributions()

    unprovided = {
        module: providers_of.get(module, ["not installed"])
        for module in modules_the_runtime_code_imports()
        if not {canonicalize_name(name) for name in providers_of.get(module, [])} & runtime
    }

    assert unprovided == {}
    # Production's server and database driver, which no module imports by name.
    assert {"gunicorn", "psycopg"} <= runtime


# Runs a script or module with every module outside the runtime set refused, as if
# only requirements.txt were installed: python -c RUNTIME_ONLY manage.py check
RUNTIME_ONLY = """
import importlib.abc, json, os, runpy, sys

REFUSED = set(json.loads(os.environ["STREMORA_REFUSED_MODULES"]))

class RefuseOutsideRuntime(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in REFUSED:
            raise ModuleNotFoundError(f"No module named {name!r} (not in requirements.txt)", name=name)
        return None

sys.meta_path.insert(0, RefuseOutsideRuntime())
if sys.argv[1] == "-m":
    sys.argv = sys.argv[2:]
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
else:
    sys.argv = sys.argv[1:]
    sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[0])))
    runpy.run_path(sys.argv[0], run_name="__main__")
"""


def modules_outside_the_runtime_set():
    runtime = runtime_set()
    return sorted(
        module
        for module, distributions in importlib.metadata.packages_distributions().items()
        if not {canonicalize_name(name) for name in distributions} & runtime
    )


@pytest.fixture
def runtime_only_environment(tmp_path):
    environment = {name: value for name, value in os.environ.items() if name in ("PATH", "HOME", "LANG", "TMPDIR")}
    environment.update(
        STREMORA_ENV_FILE="",
        SECRET_KEY="runtime-only-check-" + "k" * 40,
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        MEDIA_ROOT=str(tmp_path / "media"),
        STREMORA_REFUSED_MODULES=json.dumps(modules_outside_the_runtime_set()),
    )
    return environment


def runtime_only(*args):
    return [sys.executable, "-c", RUNTIME_ONLY, *args]


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_manage_py_and_gunicorn_run_on_the_runtime_set_alone(runtime_only_environment, tmp_path):
    assert {"pytest", "moto", "selenium"} <= set(json.loads(runtime_only_environment["STREMORA_REFUSED_MODULES"]))
    refused = subprocess.run(
        runtime_only("-m", "pytest", "--version"),
        cwd=ROOT, env=runtime_only_environment, capture_output=True, text=True, timeout=60,
    )
    assert "not in requirements.txt" in refused.stderr, "the refusal of test tools does not work"

    for command in (["migrate", "--noinput"], ["check"]):
        result = subprocess.run(
            runtime_only("manage.py", *command),
            cwd=ROOT, env=runtime_only_environment, capture_output=True, text=True, timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr

    port = free_port()
    log = open(tmp_path / "gunicorn.log", "w+")
    server = subprocess.Popen(
        runtime_only(
            "-m", "gunicorn", "stremora.wsgi:application", "--bind", f"127.0.0.1:{port}", "--workers", "2",
            "--no-control-socket",  # not the one shared socket in HOME that other servers use
        ),
        cwd=ROOT, env=runtime_only_environment, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert server.poll() is None, (tmp_path / "gunicorn.log").read_text()
            try:
                statuses = [get(f"http://127.0.0.1:{port}{path}") for path in ("/", "/api/videos/", "/api/schema/")]
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, f"gunicorn did not answer within {START_TIMEOUT} s"
                time.sleep(0.2)
        assert statuses == [200, 200, 200]
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
