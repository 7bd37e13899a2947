"""Django's debug page (DEBUG on, as ``scripts/run`` serves) shows no credential."""

import os
import sys
import types

import pytest
from django.test import RequestFactory
from django.views.debug import technical_500_response

from stremora.config import load_config

# Credentials as an operator's environment holds them, each one distinct.
ENVIRONMENT = {
    "SECRET_KEY": "django-secret-4711-abcdefghijklmnopqrstuvwxyz",
    "DATABASE_URL": "postgres://stremora:db-pw-4711@db.internal:5432/stremora",
    "CACHE_URL": "redis://:redis-pw-4711@cache.internal:6379/0",
    "CLOUDINARY_URL": "cloudinary://cloud-key-4711:cloud-secret-4711@demo-cloud",
    "AWS_ACCESS_KEY_ID": "AKIA4711EXAMPLEKEYID",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-4711",
    "AWS_S3_BUCKET_NAME": "stremora-media",
    "CELERY_BROKER_URL": "redis://broker:broker-pw-4711@queue.internal:6379/1",
}
SECRETS = [
    "django-secret-4711",
    "db-pw-4711",
    "redis-pw-4711",
    "cloud-key-4711",
    "cloud-secret-4711",
    "AKIA4711EXAMPLEKEYID",
    "aws-secret-4711",
    "broker-pw-4711",
    "token-4711",
    "session-4711",
    "login-pw-4711",
    "frame-pw-4711",
    "nested-pw-4711",
    "mapping-secret-4711",
    "pin-4711",
]
AUTHORIZATION = "Token token-4711"
# Held by local variables of the failing view (not written out there: the page shows its source).
FRAME_URL = "redis://:frame-pw-4711@frame.internal:6379/1"
FRAME_OPTIONS = {"url": "postgres://u:nested-pw-4711@db.internal/x", "note": "kept"}
FRAME_ENVIRON = types.MappingProxyType({"AWS_SECRET_ACCESS_KEY": "mapping-secret-4711"})  # as os.environ


@pytest.fixture
def operator_settings(settings, tmp_path):
    """Settings mapped from ENVIRONMENT as ``stremora.settings`` maps them, DEBUG on."""
    config = load_config({**ENVIRONMENT, "DEBUG": "true"}, tmp_path)
    settings.DEBUG = True
    settings.CONFIG = config
    settings.SECRET_KEY = config.secret_key
    # The shapes the real settings hold; the tests' own database and cache stay in use.
    settings.REPORTED_DATABASES = {"default": config.database}
    settings.CACHES = {
        alias: {**cache, "BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
        for alias, cache in (("default", config.cache), ("provider_health", config.provider_health_cache))
    }
    settings.CLOUDINARY_API_KEY = config.cloudinary.api_key
    settings.CLOUDINARY_API_SECRET = config.cloudinary.api_secret
    settings.AWS_ACCESS_KEY_ID = config.aws_access_key_id
    settings.AWS_SECRET_ACCESS_KEY = config.aws_secret_access_key
    settings.CELERY_BROKER_URL = ENVIRONMENT["CELERY_BROKER_URL"]
    return settings


def failing_request(accept):
    """A POST as the development server passes it on: the whole environment in META."""
    request = RequestFactory().post(
        "/videos/1/",
        {"title": "Harbour", "password": "login-pw-4711", "pin": "pin-4711"},
        HTTP_ACCEPT=accept,
        HTTP_AUTHORIZATION=AUTHORIZATION,
        HTTP_COOKIE="sessionid=session-4711; csrftoken=abc",
        **ENVIRONMENT,
    )
    request.sensitive_post_parameters = ["pin"]  # as @sensitive_post_parameters("pin") marks it
    return request


def a_view_that_fails(request):
    broker = os.environ.get("NOT_SET", FRAME_URL)  # noqa: F841
    options = dict(FRAME_OPTIONS)  # noqa: F841
    environment = FRAME_ENVIRON  # noqa: F841
    raise RuntimeError("boom")


def debug_page(accept):
    request = failing_request(accept)
    try:
        a_view_that_fails(request)
    except RuntimeError:
        response = technical_500_response(request, *sys.exc_info())
    assert response.status_code == 500
    return response.content.decode()


@pytest.mark.parametrize("accept", ["text/html", "text/plain"])
def test_the_debug_page_shows_no_credential(operator_settings, accept):
    page = debug_page(accept)

    leaked = [secret for secret in SECRETS if secret in page]
    assert leaked == []
    # The page did show what it should, masked.
    assert "cache.internal:6379/0" in page and "demo-cloud" in page and "queue.internal" in page
    assert "redis://********************@cache.internal:6379/0" in page.replace("&#x27;", "'")
    assert "Harbour" in page
    if accept == "text/html":  # the text report leaves local variables out
        assert "redis://********************@frame.internal:6379/1" in page.replace("&#x27;", "'")
        assert "kept" in page


def test_the_filter_is_the_configured_one(operator_settings, rf):
    from django.views.debug import get_exception_reporter_filter

    from stremora.error_reports import CredentialMaskingFilter

    assert isinstance(get_exception_reporter_filter(rf.get("/")), CredentialMaskingFilter)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("redis://:pw@h:6379/0", "redis://********************@h:6379/0"),
        ("postgres://u:p@ss/w@h/db", "postgres://********************@h/db"),
        ("https://token@example.com/x", "https://********************@example.com/x"),
        (
            "one redis://:a@h1 two amqp://u:b@h2",
            "one redis://********************@h1 two amqp://********************@h2",
        ),
        ("https://example.com/path", "https://example.com/path"),
        ("user@example.com", "user@example.com"),
    ],
)
def test_urls_lose_their_credentials(value, shown):
    from stremora.error_reports import CredentialMaskingFilter

    assert CredentialMaskingFilter().cleanse_setting("SOME_URL_SETTING", value) == shown


@pytest.mark.django_db
def test_a_failing_page_served_with_debug_on_shows_no_credential(operator_settings, client, monkeypatch, user):
    from tests.factories import video_upload
    from videos import services
    from videos.models import Video

    operator_settings.STORAGE_PROVIDERS = ["local"]
    Video.objects.create(title="Harbour", owner=user, file=video_upload(), is_published=True)

    def fails(video):
        raise RuntimeError("poster failed")

    monkeypatch.setattr(services, "poster_url", fails)
    client.raise_request_exception = False

    response = client.get("/", HTTP_AUTHORIZATION=AUTHORIZATION, **ENVIRONMENT)

    page = response.content.decode()
    assert response.status_code == 500 and "poster failed" in page and "cache.internal" in page
    assert [secret for secret in SECRETS if secret in page] == []
