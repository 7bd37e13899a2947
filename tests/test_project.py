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


def test_system_check_is_clean():
    out = StringIO()
    call_command("check", fail_level="WARNING", stdout=out)
    assert "System check identified no issues" in out.getvalue()


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
