import pytest
from django.contrib.auth import get_user_model
from django.db import connection


def pytest_addoption(parser):
    parser.addoption(
        "--soak", action="store_true", help="run the long version of the reliability suite (minutes, many clients)"
    )
    parser.addoption(
        "--dashboard-screenshot",
        metavar="PATH",
        help="save the storage dashboard as the browser test shows it (docs/images/storage-dashboard.png)",
    )


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


@pytest.fixture
def refuse_video_rows(db):
    """``refuse_video_rows("UPDATE")``: PostgreSQL refuses those writes of video rows from
    then on (a trigger raises), as a lost connection or a constraint would mid-save."""

    def refuse(operations):
        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE OR REPLACE FUNCTION refuse_video_row() RETURNS trigger AS $$"
                " BEGIN RAISE EXCEPTION 'video rows are refused by the test'; END $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                f"CREATE TRIGGER refuse_video_row BEFORE {operations} ON videos_video"
                " FOR EACH ROW EXECUTE FUNCTION refuse_video_row()"
            )

    yield refuse
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER IF EXISTS refuse_video_row ON videos_video")
        cursor.execute("DROP FUNCTION IF EXISTS refuse_video_row()")


@pytest.fixture(autouse=True)
def provider_health():
    """Each test starts with every circuit breaker closed."""
    from django.core.cache import caches

    from storage_backends import breaker, health

    for alias in ("default", "provider_health"):
        caches[alias].clear()
    breaker.forget_process_state()
    health.forget_process_state()
    yield
    for alias in ("default", "provider_health"):
        caches[alias].clear()
    breaker.forget_process_state()
    health.forget_process_state()


@pytest.fixture
def s3_inprocess(settings):
    """S3 as a provider, served by moto in this process, with an empty bucket."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        settings.AWS_ACCESS_KEY_ID = "AKIAEXAMPLE"
        settings.AWS_SECRET_ACCESS_KEY = "aws-secret-for-tests"
        settings.AWS_S3_BUCKET_NAME = "stremora-test"
        settings.AWS_S3_ENDPOINT_URL = None
        settings.AWS_REGION = "us-east-1"
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="stremora-test")
        yield client


@pytest.fixture
def s3_outage(s3_inprocess):
    """Every S3 request fails as if the endpoint refused the connection, until
    ``.stop()`` (``.start()`` refuses again)."""
    from botocore.exceptions import EndpointConnectionError

    from storage_backends import providers

    events = providers.get_storage("s3").connection.meta.client.meta.events

    def refuse(**kwargs):
        raise EndpointConnectionError(endpoint_url="https://s3.amazonaws.com")

    class Switch:
        @staticmethod
        def start():
            events.register("before-send.s3", refuse)

        @staticmethod
        def stop():
            events.unregister("before-send.s3", refuse)

    Switch.start()
    yield Switch
    Switch.stop()


@pytest.fixture(scope="session")
def cloudinary_service():
    from tests.cloudinary_server import CloudinaryTestServer

    with CloudinaryTestServer() as server:
        yield server


@pytest.fixture
def cloudinary_server(cloudinary_service, settings):
    """Cloudinary as a provider, served by the test server on loopback, empty and healthy."""
    cloudinary_service.reset()
    settings.CLOUDINARY_CLOUD_NAME = cloudinary_service.cloud_name
    settings.CLOUDINARY_API_KEY = cloudinary_service.api_key
    settings.CLOUDINARY_API_SECRET = cloudinary_service.api_secret
    settings.CLOUDINARY_UPLOAD_PREFIX = cloudinary_service.url
    settings.CLOUDINARY_DELIVERY_PREFIX = cloudinary_service.url
    # Short enough that a hanging provider costs the suite little.
    settings.STORAGE_TIMEOUT = 1.5
    yield cloudinary_service
    cloudinary_service.heal()


@pytest.fixture(scope="session")
def s3_service():
    from tests.s3_server import MotoServer

    with MotoServer() as server:
        yield server


@pytest.fixture
def s3_server(s3_service, settings):
    """S3 as a provider, served by moto's server in its own process, with an empty bucket."""
    s3_service.reset()
    s3_service.client().create_bucket(Bucket="stremora-test")
    settings.AWS_ACCESS_KEY_ID = "AKIAEXAMPLE"
    settings.AWS_SECRET_ACCESS_KEY = "aws-secret-for-tests"
    settings.AWS_S3_BUCKET_NAME = "stremora-test"
    settings.AWS_S3_ENDPOINT_URL = s3_service.url
    settings.AWS_REGION = "us-east-1"
    return s3_service
