"""The API answers as its OpenAPI schema says: schemathesis's generated requests, all its
checks, against gunicorn on PostgreSQL with a throwaway user and the local provider."""

import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from rest_framework.authtoken.models import Token

from tests.factories import video_upload
from tests.stack import GunicornServer, site_environment
from videos.models import Video

CONFIG = Path(__file__).with_name("schemathesis.toml")
SCHEMATHESIS = Path(sys.executable).with_name("st")
# A few hundred requests: enough to meet every operation's documented answers, within a
# couple of minutes on a loaded 2-CPU machine.
MAX_EXAMPLES = 10
RUN_TIMEOUT = 300


def schemathesis(site, token, *options):
    return subprocess.run(
        [
            str(SCHEMATHESIS), "--config-file", str(CONFIG), "run", f"{site.url}/api/schema/",
            "--header", f"Authorization: Token {token}",
            "--max-examples", str(MAX_EXAMPLES),
            "--seed", "14",
            "--generation-deterministic",
            "--workers", "1",
            "--request-timeout", "30",
            "--no-color",
            *options,
        ],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )


@pytest.mark.django_db(transaction=True)
def test_every_answer_of_the_api_is_one_its_schema_documents(django_user_model, media_root, tmp_path):
    user = django_user_model.objects.create_user("schemathesis", password=secrets.token_urlsafe(20))
    token = Token.objects.create(user=user).key
    Video.objects.create(title="Harbour", owner=user, file=video_upload(), is_published=True)
    environment = site_environment(secret_key=secrets.token_urlsafe(50), media_root=media_root)

    with GunicornServer(environment, workers=2) as site:
        result = schemathesis(site, token, "--report", "junit", "--report-dir", str(tmp_path))
        log = site.log()

    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-2000:]
    assert "Internal Server Error" not in log
