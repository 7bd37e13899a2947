"""The operator docs stay true: the IAM policy, the configuration reference, production settings."""

import json
import os
import re
import secrets
import shlex
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import pytest
from django.core.files.base import ContentFile
from moto import mock_aws

from storage_backends.s3 import S3Storage
from stremora.config import load_config

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

# The IAM action that authorises each S3 API operation.
IAM_ACTION_OF = {
    "PutObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "ListParts": "s3:ListMultipartUploadParts",
    "GetObject": "s3:GetObject",
    "HeadObject": "s3:GetObject",
    "DeleteObject": "s3:DeleteObject",
    "ListObjectsV2": "s3:ListBucket",
    "HeadBucket": "s3:ListBucket",
}


def s3_operations_the_code_performs():
    """Run every S3 code path of the provider against moto and record each API operation."""
    operations = []
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="policy-test")
        storage = S3Storage(access_key="testing", secret_key="testing", bucket_name="policy-test", timeout=5)
        events = storage.connection.meta.client.meta.events
        events.register("before-call.s3", lambda model, **kwargs: operations.append(model.name))

        small = storage.save("videos/small.mp4", ContentFile(b"x" * 1000))
        large = storage.save("videos/large.mp4", ContentFile(b"y" * (9 * 1024 * 1024)))
        storage.open(small).read()
        storage.size(small), storage.exists(small), storage.md5(small), storage.url(small)
        list(storage.iter_files())
        storage.check()
        storage.delete(large)

        def fail_a_part(**kwargs):
            raise ConnectionError("the network went away")

        events.register("before-send.s3.UploadPart", fail_a_part)
        with pytest.raises(Exception):
            storage.save("videos/broken.mp4", ContentFile(b"z" * (9 * 1024 * 1024)))

        direct_upload_of(storage)
    return set(operations)


def direct_upload_of(storage):
    """A direct upload from start to abort; the client's own UploadPart requests are not the server's."""
    uploads, key = storage.direct_uploads, "videos/direct.mp4"
    expires_at = datetime.now(timezone.utc) + timedelta(hours=1)
    started = uploads.start(key, 9 * 1024 * 1024, "video/mp4", expires_at=expires_at)
    uploads.sign_parts(key, started.state, [2], expires_at=expires_at)
    client = boto3.client("s3", region_name="us-east-1")
    report = [
        {
            "number": number,
            "etag": client.upload_part(
                Bucket="policy-test",
                Key=f"stremora/{key}",
                UploadId=started.state["upload_id"],
                PartNumber=number,
                Body=body,
            )["ETag"],
        }
        for number, body in ((1, b"d" * (8 * 1024 * 1024)), (2, b"e" * (1024 * 1024)))
    ]
    uploads.received(key, started.state)
    uploads.finish(key, started.state, {"parts": report})
    uploads.finish(key, started.state, {"parts": report})
    uploads.received(key, started.state)
    uploads.read_head(key, 64)
    uploads.probe_source(key)
    uploads.abort(key, started.state)


def test_the_iam_policy_allows_exactly_what_the_code_calls():
    policy = json.loads((DOCS / "iam-policy.json").read_text())
    granted = set()
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        actions = statement["Action"]
        granted |= {actions} if isinstance(actions, str) else set(actions)
        resources = statement["Resource"]
        assert resources in ("arn:aws:s3:::YOUR-BUCKET", "arn:aws:s3:::YOUR-BUCKET/stremora/*")

    operations = s3_operations_the_code_performs()

    unknown = operations - set(IAM_ACTION_OF)
    assert not unknown, f"add these operations to IAM_ACTION_OF and the policy: {unknown}"
    assert granted == {IAM_ACTION_OF[operation] for operation in operations}
    assert "AbortMultipartUpload" in operations and "CompleteMultipartUpload" in operations
    assert "ListParts" in operations


class RecordingEnvironment(dict):
    def __init__(self, values):
        super().__init__(values)
        self.read = set()

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)


def variables_the_settings_read():
    environment = RecordingEnvironment({"DEBUG": "true"})
    load_config(environment, ROOT)
    settings_source = (ROOT / "stremora" / "settings.py").read_text()
    direct = set(re.findall(r'os\.environ\.get\("([A-Z0-9_]+)"', settings_source))
    return environment.read | direct


def test_every_variable_is_in_env_example_and_the_reference():
    variables = variables_the_settings_read()
    env_example = (ROOT / ".env.example").read_text()
    reference = (DOCS / "configuration.md").read_text()

    assert len(variables) >= 20
    assert sorted(name for name in variables if not re.search(rf"^#? ?{name}=", env_example, re.MULTILINE)) == []
    assert sorted(name for name in variables if f"| `{name}` |" not in reference) == []


def test_check_deploy_is_clean_with_the_documented_production_settings(tmp_path):
    production = {}
    for line in (DOCS / "production.env").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            production[name] = value
    production.update(
        SECRET_KEY=secrets.token_urlsafe(50),
        CLOUDINARY_URL="cloudinary://123456789012345:example-secret@example-cloud",
        AWS_ACCESS_KEY_ID="AKIAEXAMPLEEXAMPLE",
        AWS_SECRET_ACCESS_KEY="example-secret-access-key",
        MEDIA_ROOT=str(tmp_path / "media"),
    )
    environment = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG", "TMPDIR")}
    environment.update(production, STREMORA_ENV_FILE="")

    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def shell_commands(markdown):
    """Each command of the ```sh blocks, continuation lines joined, comments left out."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", markdown, re.DOTALL):
        for command in block.replace("\\\n", " ").splitlines():
            command = command.split(" #", 1)[0].strip()
            if command and not command.startswith("#"):
                commands.append(command)
    return commands


def systemd_unit(markdown, name):
    block = re.search(rf"```ini\n# /etc/systemd/system/{name}\n(.*?)```", markdown, re.DOTALL).group(1)
    return dict(line.split("=", 1) for line in block.splitlines() if "=" in line and not line.startswith("#"))


def test_the_production_steps_give_the_service_user_media_root_and_nothing_else():
    production = (DOCS / "production.md").read_text()
    media_root = Path(re.search(r"^MEDIA_ROOT=(.+)$", (DOCS / "production.env").read_text(), re.MULTILINE).group(1))
    commands = shell_commands(production)
    unit = systemd_unit(production, "stremora.service")

    assert any(command.startswith("useradd --system") and command.endswith(" stremora") for command in commands)
    made_for_the_service = [
        Path(path)
        for command in commands
        if command.startswith("install -d -o stremora -g stremora -m 0750 ")
        for path in command.split()[8:]
    ]
    assert media_root in made_for_the_service
    assert (unit["User"], unit["Group"]) == ("stremora", "stremora")
    assert unit["ProtectSystem"] == "strict"
    assert any(media_root.is_relative_to(path) for path in map(Path, unit["ReadWritePaths"].split()))
    assert not Path(unit["WorkingDirectory"]) in made_for_the_service, "the service must not own its code"
    assert f"install -o root -g stremora -m 0640 docs/production.env {unit['WorkingDirectory']}/.env" in commands


@pytest.mark.django_db(transaction=True)
def test_the_documented_database_backup_restores_what_was_deleted(tmp_path, settings, user):
    from django.db import connection

    from tests.factories import video_upload
    from videos import services
    from videos.models import Video

    production = (DOCS / "production.md").read_text()
    dump_command = next(command for command in shell_commands(production) if command.startswith("pg_dump "))
    restore_command = next(command for command in shell_commands(production) if command.startswith("pg_restore "))
    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.postgresql":
        pytest.fail("the backup steps are PostgreSQL's: run the suite with scripts/test")
    # As in production, the dump and the restore connect as the tables' owner.
    url = f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"
    dump = tmp_path / "db.dump"
    settings.STORAGE_PROVIDERS = ["local"]
    kept = services.create_video(owner=user, title="Harbour", file=video_upload(size=2000))

    dump_arguments = [
        f"--file={dump}" if argument.startswith("--file=") else url if argument.startswith("postgres://") else argument
        for argument in shlex.split(dump_command.replace("$(date +%F)", "DATE"))
    ]
    subprocess.run(dump_arguments, check=True, capture_output=True, timeout=120)
    Video.objects.all().delete()
    connection.close()  # pg_restore --clean drops the tables this connection would hold
    restore_arguments = [
        f"--dbname={url}" if argument.startswith("--dbname=") else argument
        for argument in shlex.split(restore_command)[:-1]
    ] + [str(dump)]
    restored = subprocess.run(restore_arguments, capture_output=True, text=True, timeout=120)

    assert restored.returncode == 0, restored.stderr
    assert list(Video.objects.values_list("pk", "title", "file")) == [(kept.pk, "Harbour", kept.file.name)]
