"""S3 without keys in the settings: boto3's default chain signs (here a profile file,
as an IAM role would on EC2/ECS/EKS), against moto's server in its own process."""

import io
import logging

import pytest
from django.core import checks
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.core.management.base import CommandError

from storage_backends import providers
from storage_backends.chain import FallbackStorage
from storage_backends.errors import StorageUnavailable

PROFILE_KEY_ID = "AKIAPROFILEEXAMPLE01"
PROFILE_SECRET = "profile-secret-Zq8vN2xWcR"
CHAIN_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)


@pytest.fixture
def no_ambient_credentials(monkeypatch, tmp_path):
    """boto3's default chain finds nothing unless a test gives it something."""
    for variable in CHAIN_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    empty = tmp_path / "empty-aws-file"
    empty.write_text("")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance metadata service here
    return monkeypatch


@pytest.fixture
def s3_from_profile(s3_server, settings, no_ambient_credentials, tmp_path):
    """S3 on moto's server, configured by its bucket alone; the keys come from AWS_PROFILE."""
    credentials_file = tmp_path / "aws-credentials"
    credentials_file.write_text(
        f"[stremora]\naws_access_key_id = {PROFILE_KEY_ID}\naws_secret_access_key = {PROFILE_SECRET}\n"
    )
    no_ambient_credentials.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials_file))
    no_ambient_credentials.setenv("AWS_PROFILE", "stremora")
    settings.AWS_ACCESS_KEY_ID = None
    settings.AWS_SECRET_ACCESS_KEY = None
    settings.STORAGE_PROVIDERS = ["s3"]
    return s3_server


def signed_with(events):
    key_ids = []

    def record(request, **kwargs):
        key_ids.append(request.headers["Authorization"].decode().split("Credential=")[1].split("/")[0])

    events.register("before-send.s3", record)
    return key_ids


def test_the_bucket_alone_configures_s3_and_the_profile_signs_an_upload_and_a_read(s3_from_profile):
    assert providers.is_configured("s3")
    key_ids = signed_with(providers.get_storage("s3").connection.meta.client.meta.events)

    name = FallbackStorage().save("videos/role.mp4", ContentFile(b"from a profile"))
    with FallbackStorage().open(name) as stored:
        content = stored.read()

    assert name.startswith("s3:videos/role_") and content == b"from a profile"
    assert key_ids and set(key_ids) == {PROFILE_KEY_ID}


def test_manage_py_check_and_check_storage_accept_s3_from_the_profile(s3_from_profile):
    assert [message.id for message in checks.run_checks(tags=["stremora"])] == []

    out = io.StringIO()
    call_command("check_storage", stdout=out)

    assert [line.split()[:5] for line in out.getvalue().splitlines() if line.startswith("s3 ")] == [
        ["s3", "yes", "yes", "yes", "ok"]
    ]


def test_a_secret_from_the_default_chain_never_reaches_a_log_line(s3_from_profile, caplog):
    events = providers.get_storage("s3").connection.meta.client.meta.events

    def leak(request, **kwargs):
        raise ConnectionError(f"proxy refused a request signed by {PROFILE_KEY_ID}:{PROFILE_SECRET}")

    events.register("before-send.s3", leak)

    with caplog.at_level(logging.INFO), pytest.raises(StorageUnavailable) as refused:
        FallbackStorage().save("videos/leak.mp4", ContentFile(b"x"))

    assert PROFILE_SECRET not in caplog.text and PROFILE_SECRET not in str(refused.value)
    assert f"{PROFILE_KEY_ID}:***" in str(refused.value)


def test_a_bucket_with_no_credentials_anywhere_fails_its_check_clearly(s3_server, settings, no_ambient_credentials):
    settings.AWS_ACCESS_KEY_ID = None
    settings.AWS_SECRET_ACCESS_KEY = None
    settings.STORAGE_PROVIDERS = ["s3", "local"]
    out, err = io.StringIO(), io.StringIO()

    with pytest.raises(CommandError, match="1 with problems"):
        call_command("check_storage", stdout=out, stderr=err)

    s3_line = next(line for line in out.getvalue().splitlines() if line.startswith("s3 "))
    assert s3_line.split()[:4] == ["s3", "yes", "yes", "NO"]
    assert "NoCredentialsFound: No AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in s3_line


def test_half_a_key_pair_is_reported_as_missing_its_other_half(settings):
    settings.STORAGE_PROVIDERS = ["s3", "local"]
    settings.AWS_S3_BUCKET_NAME = "stremora-test"
    settings.AWS_ACCESS_KEY_ID = "AKIAEXAMPLE"
    settings.AWS_SECRET_ACCESS_KEY = None

    warnings = [message.msg for message in checks.run_checks(tags=["stremora"])]

    assert warnings == ["The s3 storage provider is skipped: AWS_SECRET_ACCESS_KEY not set."]
    assert not providers.is_configured("s3")
