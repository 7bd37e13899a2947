"""The operator docs stay true: the IAM policy, the configuration reference, production settings."""

import json
import os
import re
import secrets
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
