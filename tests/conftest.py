import pytest
from django.contrib.auth import get_user_model
from django.db import connection


def pytest_report_header(config):
    from django.conf import settings

    return f"database engine: {settings.DATABASES['default']['ENGINE']}"


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    """Local-disk files of each test land in its own temporary folder."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def user(db):
    return get_user_model().objects.create_user("viewer", "viewer@example.com", "pw-viewer-1")


@pytest.fixture
def staff_user(db):
    return get_user_model().objects.create_superuser("editor", "editor@example.com", "pw-editor-1")


@pytest.fixture
def database_vendor(db):
    return connection.vendor
