"""Parsing of every environment setting in stremora.config."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stremora.config import (
    DEVELOPMENT_SECRET_KEY,
    ConfigError,
    load_config,
)

BASE_DIR = Path("/srv/stremora")
PROJECT_DIR = Path(__file__).resolve().parent.parent


def load(**variables):
    return load_config({"SECRET_KEY": "s3cr3t-key", **variables}, BASE_DIR)


def test_defaults_follow_the_contract():
    config = load_config({"DEBUG": "true"}, BASE_DIR)

    assert config.debug is True
    assert config.secret_key == DEVELOPMENT_SECRET_KEY
    assert config.allowed_hosts == ["localhost", "127.0.0.1"]
    assert config.database == {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": "/srv/stremora/db.sqlite3",
        "USER": "",
        "PASSWORD": "",
        "HOST": "",
        "PORT": "",
    }
    assert config.cache["BACKEND"] == "django.core.cache.backends.locmem.LocMemCache"
    assert config.storage_providers == ("cloudinary", "s3", "local")
    assert config.cloudinary is None
    assert config.cloudinary_upload_prefix == "https://api.cloudinary.com"
    assert config.cloudinary_delivery_prefix == "https://res.cloudinary.com"
    assert config.aws_access_key_id is None
    assert config.aws_secret_access_key is None
    assert config.aws_region == "us-east-1"
    assert config.aws_s3_bucket_name is None
    assert config.aws_s3_endpoint_url is None
    assert config.aws_s3_url_expiry == 3600
    assert config.media_root == BASE_DIR / "media"
    assert config.storage_timeout == 30.0
    assert config.storage_breaker_failures == 3
    assert config.storage_breaker_cooldown == 60.0
    assert config.max_upload_mb == 2048


def test_debug_is_off_by_default():
    assert load().debug is False


def test_secret_key_missing_with_debug_off_names_the_variable():
    with pytest.raises(ConfigError, match="SECRET_KEY is required when DEBUG is off"):
        load_config({}, BASE_DIR)
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        load_config({"DEBUG": "false", "SECRET_KEY": "  "}, BASE_DIR)


def test_every_value_is_parsed_and_typed():
    config = load(
        DEBUG="off",
        ALLOWED_HOSTS="videos.example.com, .example.org",
        DATABASE_URL="postgres://app:pw@db.internal:5433/stremora",
        CACHE_URL="redis://127.0.0.1:6379/2",
        STORAGE_PROVIDERS=" S3 , local ",
        CLOUDINARY_URL="cloudinary://123456:abc%2Fdef@demo-cloud",
        CLOUDINARY_UPLOAD_PREFIX="http://127.0.0.1:9000/",
        AWS_ACCESS_KEY_ID="AKIAEXAMPLE",
        AWS_SECRET_ACCESS_KEY="secret/Key",
        AWS_REGION="eu-west-1",
        AWS_S3_BUCKET_NAME="stremora-videos",
        AWS_S3_ENDPOINT_URL="http://127.0.0.1:5000",
        AWS_S3_URL_EXPIRY="600",
        MEDIA_ROOT="/var/lib/stremora/media",
        STORAGE_TIMEOUT="2.5",
        STORAGE_BREAKER_FAILURES="5",
        STORAGE_BREAKER_COOLDOWN="15",
        MAX_UPLOAD_MB="512",
    )

    assert config.secret_key == "s3cr3t-key"
    assert config.debug is False
    assert config.allowed_hosts == ["videos.example.com", ".example.org"]
    assert config.database["ENGINE"] == "django.db.backends.postgresql"
    assert (config.database["NAME"], config.database["HOST"], config.database["PORT"]) == (
        "stremora",
        "db.internal",
        5433,
    )
    assert config.cache == {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:6379/2",
        "OPTIONS": {"socket_connect_timeout": 1.0, "socket_timeout": 1.0},
    }
    assert config.storage_providers == ("s3", "local")
    assert (config.cloudinary.cloud_name, config.cloudinary.api_key, config.cloudinary.api_secret) == (
        "demo-cloud",
        "123456",
        "abc/def",
    )
    assert config.cloudinary_upload_prefix == "http://127.0.0.1:9000"
    assert config.aws_access_key_id == "AKIAEXAMPLE"
    assert config.aws_secret_access_key == "secret/Key"
    assert config.aws_region == "eu-west-1"
    assert config.aws_s3_bucket_name == "stremora-videos"
    assert config.aws_s3_endpoint_url == "http://127.0.0.1:5000"
    assert config.aws_s3_url_expiry == 600
    assert config.media_root == Path("/var/lib/stremora/media")
    assert config.storage_timeout == 2.5
    assert config.storage_breaker_failures == 5
    assert config.storage_breaker_cooldown == 15.0
    assert config.max_upload_mb == 512


def test_empty_values_count_as_unset():
    config = load(CLOUDINARY_URL="", AWS_S3_BUCKET_NAME=" ", STORAGE_PROVIDERS="", MAX_UPLOAD_MB="")
    assert config.cloudinary is None
    assert config.aws_s3_bucket_name is None
    assert config.storage_providers == ("cloudinary", "s3", "local")
    assert config.max_upload_mb == 2048


def test_relative_paths_are_taken_from_the_project_directory():
    config = load(DATABASE_URL="sqlite:///data/app.sqlite3", MEDIA_ROOT="uploads")
    assert config.database["NAME"] == "/srv/stremora/data/app.sqlite3"
    assert config.media_root == BASE_DIR / "uploads"


def test_in_memory_sqlite_is_kept():
    assert load(DATABASE_URL="sqlite://:memory:").database["NAME"] == ":memory:"


@pytest.mark.parametrize(
    "url, message",
    [
        ("nosuch://app:hunter2@db/stremora", "DATABASE_URL has an unknown or missing scheme 'nosuch'"),
        ("not a url", "DATABASE_URL has an unknown or missing scheme ''"),
        ("postgres://app:hunter2@db.internal", "DATABASE_URL names no database"),
    ],
)
def test_bad_database_url_is_a_clear_error_without_the_password(url, message):
    with pytest.raises(ConfigError) as excinfo:
        load(DATABASE_URL=url)
    assert message in str(excinfo.value)
    assert "hunter2" not in str(excinfo.value)


def test_bad_cache_url_is_a_clear_error():
    with pytest.raises(ConfigError, match="CACHE_URL has an unknown or missing scheme 'memcachd'"):
        load(CACHE_URL="memcachd://127.0.0.1:11211")


@pytest.mark.parametrize("alias, backend", [("locmem://", "locmem.LocMemCache"), ("dummy://", "dummy.DummyCache")])
def test_short_cache_schemes(alias, backend):
    assert load(CACHE_URL=alias).cache["BACKEND"] == f"django.core.cache.backends.{backend}"


def test_the_breakers_cache_is_the_same_redis_with_short_timeouts():
    config = load(CACHE_URL="redis://:pw@cache.internal:6379/2")

    assert config.provider_health_cache == {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": config.cache["LOCATION"],
        "OPTIONS": {"socket_connect_timeout": 0.1, "socket_timeout": 0.1},
    }
    assert config.cache["OPTIONS"] == {"socket_connect_timeout": 1.0, "socket_timeout": 1.0}


@pytest.mark.parametrize("url", ["locmem://", "dummy://"])
def test_the_breakers_cache_is_the_default_cache_without_redis(url):
    config = load(CACHE_URL=url)

    assert config.provider_health_cache == config.cache


@pytest.mark.parametrize(
    "value, message",
    [
        ("cloudinary,azure", "unknown provider(s) azure"),
        ("s3,s3", "more than once"),
        (",", "at least one provider"),
    ],
)
def test_bad_storage_providers(value, message):
    with pytest.raises(ConfigError, match="STORAGE_PROVIDERS") as excinfo:
        load(STORAGE_PROVIDERS=value)
    assert message in str(excinfo.value)


@pytest.mark.parametrize(
    "url",
    ["https://123:topsecret@demo", "cloudinary://123@demo", "cloudinary://123:topsecret@", "cloudinary://demo"],
)
def test_bad_cloudinary_url_never_echoes_the_secret(url):
    with pytest.raises(ConfigError, match="CLOUDINARY_URL must look like") as excinfo:
        load(CLOUDINARY_URL=url)
    assert "topsecret" not in str(excinfo.value)


def test_bad_endpoint_url_never_echoes_credentials():
    with pytest.raises(ConfigError, match="AWS_S3_ENDPOINT_URL must be an http") as excinfo:
        load(AWS_S3_ENDPOINT_URL="ftp://key:topsecret@minio.internal")
    assert "topsecret" not in str(excinfo.value)
    with pytest.raises(ConfigError, match="CLOUDINARY_UPLOAD_PREFIX"):
        load(CLOUDINARY_UPLOAD_PREFIX="api.cloudinary.com")


@pytest.mark.parametrize(
    "variable, value, message",
    [
        ("DEBUG", "maybe", "DEBUG must be a boolean"),
        ("MAX_UPLOAD_MB", "lots", "MAX_UPLOAD_MB must be a whole number, got 'lots'"),
        ("MAX_UPLOAD_MB", "0", "MAX_UPLOAD_MB must be at least 1"),
        ("AWS_S3_URL_EXPIRY", "1.5", "AWS_S3_URL_EXPIRY must be a whole number"),
        ("STORAGE_BREAKER_FAILURES", "-2", "STORAGE_BREAKER_FAILURES must be at least 1"),
        ("STORAGE_TIMEOUT", "soon", "STORAGE_TIMEOUT must be a number of seconds"),
        ("STORAGE_TIMEOUT", "0", "STORAGE_TIMEOUT must be greater than 0"),
        ("STORAGE_BREAKER_COOLDOWN", "nan", "STORAGE_BREAKER_COOLDOWN must be greater than 0"),
    ],
)
def test_malformed_values_name_the_variable(variable, value, message):
    with pytest.raises(ConfigError) as excinfo:
        load(**{variable: value})
    assert message in str(excinfo.value)


def test_request_body_pacing_has_defaults_and_is_validated():
    assert (load().request_body_timeout, load().request_body_min_rate_kb) == (10.0, 32)
    config = load(REQUEST_BODY_TIMEOUT="2.5", REQUEST_BODY_MIN_RATE_KB="8")
    assert (config.request_body_timeout, config.request_body_min_rate_kb) == (2.5, 8)
    with pytest.raises(ConfigError, match="REQUEST_BODY_TIMEOUT must be greater than 0"):
        load(REQUEST_BODY_TIMEOUT="0")
    with pytest.raises(ConfigError, match="REQUEST_BODY_MIN_RATE_KB must be at least 1"):
        load(REQUEST_BODY_MIN_RATE_KB="0")


def test_config_repr_hides_credentials():
    config = load(
        CLOUDINARY_URL="cloudinary://123:cloudsecret@demo",
        AWS_SECRET_ACCESS_KEY="awssecret",
        DATABASE_URL="postgres://app:dbsecret@db/stremora",
    )
    text = repr(config)
    for secret in ("s3cr3t-key", "cloudsecret", "awssecret", "dbsecret"):
        assert secret not in text


def manage(*args, env_overrides, cwd=PROJECT_DIR):
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"SECRET_KEY", "DEBUG", "DATABASE_URL", "DJANGO_SETTINGS_MODULE"}
    }
    env["STREMORA_ENV_FILE"] = ""
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_manage_py_without_secret_key_is_a_one_line_error():
    result = manage("check", env_overrides={"DEBUG": "false"})

    assert result.returncode != 0
    assert "Stremora configuration error: SECRET_KEY is required when DEBUG is off" in result.stderr
    assert "Traceback" not in result.stderr


def test_manage_py_with_bad_database_url_is_a_one_line_error():
    result = manage(
        "check", env_overrides={"SECRET_KEY": "x", "DATABASE_URL": "postgress://app:hunter2@db/stremora"}
    )

    assert result.returncode != 0
    assert "DATABASE_URL has an unknown or missing scheme 'postgress'" in result.stderr
    assert "hunter2" not in result.stderr
    assert "Traceback" not in result.stderr


def test_dotenv_file_is_read_and_the_environment_wins(tmp_path):
    env_file = tmp_path / "stremora.env"
    env_file.write_text("SECRET_KEY=from-dotenv\nMAX_UPLOAD_MB=7\nSTORAGE_TIMEOUT=9\n")
    script = "from django.conf import settings; print(settings.MAX_UPLOAD_MB, settings.STORAGE_TIMEOUT)"

    result = manage(
        "shell",
        "--verbosity=0",
        "-c",
        script,
        env_overrides={"STREMORA_ENV_FILE": str(env_file), "STORAGE_TIMEOUT": "4"},
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["7", "4.0"]


def test_https_only_is_off_unless_asked_for():
    assert load().https_only is False
    assert load(HTTPS_ONLY="true").https_only is True
    with pytest.raises(ConfigError, match="HTTPS_ONLY must be a boolean"):
        load(HTTPS_ONLY="sometimes")


def test_num_proxies_is_zero_unless_set():
    assert load().num_proxies == 0
    assert load(NUM_PROXIES="2").num_proxies == 2
    with pytest.raises(ConfigError, match="NUM_PROXIES must be at least 0"):
        load(NUM_PROXIES="-1")


def test_the_api_takes_num_proxies_from_the_settings():
    from django.conf import settings

    assert settings.REST_FRAMEWORK["NUM_PROXIES"] == 0
