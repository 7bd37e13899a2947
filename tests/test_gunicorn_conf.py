"""gunicorn.conf.py's worker hook, run as gunicorn runs it: in a process of its own,
once the worker has loaded Stremora and before its first request."""

import secrets
import subprocess
import sys
from types import SimpleNamespace

from tests.stack import ROOT, site_environment

WORKER_STARTING = """
import gc, runpy
import django
django.setup()
hooks = runpy.run_path("gunicorn.conf.py")
hooks["post_worker_init"](None)
from storage_backends import providers
print(gc.get_freeze_count(), providers.get_storage("s3").direct_uploads._shared_client is not None)
"""


def test_a_worker_builds_its_s3_client_and_keeps_what_it_loaded_out_of_full_collections(tmp_path):
    (tmp_path / "metrics").mkdir()
    environment = site_environment(
        secret_key=secrets.token_urlsafe(50), media_root=tmp_path / "media", providers="s3,local",
        s3_url="http://127.0.0.1:9", s3_settings=SimpleNamespace(AWS_ACCESS_KEY_ID="testing",
                                                                 AWS_SECRET_ACCESS_KEY="testing"),
        bucket="stremora-test", DJANGO_SETTINGS_MODULE="stremora.settings",
        PROMETHEUS_MULTIPROC_DIR=tmp_path / "metrics",
    )

    result = subprocess.run(
        [sys.executable, "-c", WORKER_STARTING], cwd=ROOT, env=environment, capture_output=True, text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    frozen, client_built = result.stdout.split()
    # Django, DRF and botocore's S3 model: far more than a bare interpreter's objects.
    assert int(frozen) > 100_000
    assert client_built == "True"
