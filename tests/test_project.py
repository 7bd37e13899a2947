from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.views.debug import SafeExceptionReporterFilter


@pytest.mark.django_db
def test_no_model_change_lacks_a_migration():
    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


def test_system_check_is_clean_with_every_provider_configured(settings):
    settings.CLOUDINARY_CLOUD_NAME = "demo"
    settings.CLOUDINARY_API_KEY = "123"
    settings.CLOUDINARY_API_SECRET = "abc"
    settings.AWS_ACCESS_KEY_ID = "AKIAEXAMPLE"
    settings.AWS_SECRET_ACCESS_KEY = "secret"
    settings.AWS_S3_BUCKET_NAME = "videos"

    out = StringIO()
    call_command("check", fail_level="WARNING", stdout=out)
    assert "System check identified no issues" in out.getvalue()


def test_system_check_warns_about_each_provider_without_credentials():
    from django.core.management.base import SystemCheckError

    call_command("check")  # warnings only: passes at the default fail level
    with pytest.raises(SystemCheckError) as excinfo:
        call_command("check", fail_level="WARNING")
    message = str(excinfo.value)
    assert "The cloudinary storage provider is skipped: CLOUDINARY_URL not set." in message
    assert "The s3 storage provider is skipped: AWS_S3_BUCKET_NAME not set." in message


def test_system_check_fails_when_no_provider_of_the_chain_is_configured(settings):
    from django.core.management.base import SystemCheckError

    settings.STORAGE_PROVIDERS = ["cloudinary", "s3"]
    with pytest.raises(SystemCheckError, match="stremora.E001"):
        call_command("check")


def test_provider_credentials_are_masked_in_error_reports(settings):
    settings.CLOUDINARY_API_KEY = "cloudkey"
    settings.CLOUDINARY_API_SECRET = "cloudsecret"
    settings.AWS_ACCESS_KEY_ID = "AKIAEXAMPLE"
    settings.AWS_SECRET_ACCESS_KEY = "awssecret"

    shown = SafeExceptionReporterFilter().get_safe_settings()

    for name in ("CLOUDINARY_API_KEY", "CLOUDINARY_API_SECRET", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert shown[name] == SafeExceptionReporterFilter.cleansed_substitute
    assert "SECRET_KEY" in shown and shown["SECRET_KEY"] == SafeExceptionReporterFilter.cleansed_substitute


def test_suite_runs_on_the_configured_database(database_vendor):
    expected = "postgresql" if "postgresql" in settings.DATABASES["default"]["ENGINE"] else "sqlite"
    assert database_vendor == expected
