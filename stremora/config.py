"""Every setting Stremora reads from the environment, parsed and typed in one place.

``load_config(environ, base_dir)`` turns a mapping of environment variables into a
frozen ``Config``. ``stremora.settings`` is the only caller in production; tests call
it with a plain dict. Every problem is reported as ``ConfigError`` naming the
variable, and no message ever repeats a value that may hold a credential.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping
from urllib.parse import unquote, urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

from storage_backends.registry import PROVIDER_NAMES

DEFAULT_ALLOWED_HOSTS = ["localhost", "127.0.0.1"]
DEFAULT_CACHE_URL = "locmem://"
# Seconds a Redis cache may take to connect or answer.
REDIS_TIMEOUT = 1.0
# The same for the circuit breakers' reads, made on every upload: a Redis that stops
# answering must cost an upload a moment, not a second.
PROVIDER_HEALTH_REDIS_TIMEOUT = 0.1
REDIS_BACKEND = "django.core.cache.backends.redis.RedisCache"
DEFAULT_CLOUDINARY_UPLOAD_PREFIX = "https://api.cloudinary.com"
DEFAULT_CLOUDINARY_DELIVERY_PREFIX = "https://res.cloudinary.com"
DEFAULT_STORAGE_PROVIDERS = "cloudinary,s3,local"
DEFAULT_CLOUDINARY_FOLDER = "stremora"
# How names without a provider prefix are read (see storage_backends.names).
CLOUDINARY_LEGACY_NAME_STYLES = ("stremora", "django-cloudinary-storage")
DEVELOPMENT_SECRET_KEY = "django-insecure-stremora-development-only"
# A bearer token shorter than this could be guessed over many scrapes.
METRICS_TOKEN_MIN_LENGTH = 24

_TRUE_STRINGS = {"1", "true", "yes", "on", "y", "t"}
_FALSE_STRINGS = {"0", "false", "no", "off", "n", "f"}

# Short cache scheme names accepted besides django-environ's own.
_CACHE_SCHEME_ALIASES = {"locmem": "locmemcache", "dummy": "dummycache"}


class ConfigError(ImproperlyConfigured):
    """A setting in the environment is missing or malformed."""


@dataclass(frozen=True)
class CloudinaryAccount:
    cloud_name: str
    api_key: str
    api_secret: str = field(repr=False)


@dataclass(frozen=True)
class Config:
    secret_key: str = field(repr=False)
    debug: bool
    allowed_hosts: list[str]
    database: dict = field(repr=False)
    cache: dict = field(repr=False)
    provider_health_cache: dict = field(repr=False)
    storage_providers: tuple[str, ...]
    cloudinary: CloudinaryAccount | None
    cloudinary_upload_prefix: str
    cloudinary_delivery_prefix: str
    cloudinary_folder: str
    cloudinary_legacy_names: str
    aws_access_key_id: str | None = field(repr=False)
    aws_secret_access_key: str | None = field(repr=False)
    aws_region: str
    aws_s3_bucket_name: str | None
    aws_s3_endpoint_url: str | None
    aws_s3_url_expiry: int
    media_root: Path
    storage_timeout: float
    storage_breaker_failures: int
    storage_breaker_cooldown: float
    max_upload_mb: int
    # Largest file each provider takes, in MB; None: no limit of its own.
    cloudinary_max_mb: int | None
    s3_max_mb: int | None
    local_max_mb: int | None
    request_body_timeout: float
    request_body_min_rate_kb: int
    upload_session_ttl: int
    provider_wait_slots: int | None
    https_only: bool
    num_proxies: int
    metrics_token: str | None = field(repr=False)
    celery_broker_url: str | None = field(repr=False)
    storage_cleanup_delete: bool


class _Reader:
    """Typed, strict access to one environment mapping, with errors that name the variable."""

    def __init__(self, environ_mapping: Mapping[str, str]):
        self._environ = environ_mapping

    def optional(self, name: str) -> str | None:
        """The stripped value, or None when unset or empty."""
        value = self._environ.get(name, "").strip()
        return value or None

    def string(self, name: str, default: str) -> str:
        return self.optional(name) or default

    def boolean(self, name: str, default: bool) -> bool:
        value = self.optional(name)
        if value is None:
            return default
        if value.lower() in _TRUE_STRINGS:
            return True
        if value.lower() in _FALSE_STRINGS:
            return False
        raise ConfigError(f"{name} must be a boolean (true/false, on/off, 1/0), got {value!r}.")

    def integer(self, name: str, default: int, minimum: int = 1) -> int:
        value = self.optional(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number, got {value!r}.") from None
        if number < minimum:
            raise ConfigError(f"{name} must be at least {minimum}, got {number}.")
        return number

    def optional_integer(self, name: str, minimum: int = 1) -> int | None:
        """A whole number, or None when unset."""
        return None if self.optional(name) is None else self.integer(name, 0, minimum)

    def choice(self, name: str, choices: tuple[str, ...]) -> str:
        """One of ``choices`` (the first when unset), compared case-insensitively."""
        value = (self.optional(name) or choices[0]).lower()
        if value not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}.")
        return value

    def positive_number(self, name: str, default: float) -> float:
        value = self.optional(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{name} must be a number of seconds, got {value!r}.") from None
        if not number > 0:
            raise ConfigError(f"{name} must be greater than 0, got {value!r}.")
        return number

    def comma_list(self, name: str, default: str) -> list[str]:
        raw = self.optional(name) or default
        return [item.strip() for item in raw.split(",") if item.strip()]

    def http_url(self, name: str, default: str | None) -> str | None:
        value = self.optional(name)
        if value is None:
            return default
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            # The value may carry credentials (user:password@host): never echo it.
            raise ConfigError(f"{name} must be an http:// or https:// URL with a host.")
        return value.rstrip("/")

    def redis_url(self, name: str) -> str | None:
        value = self.optional(name)
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("redis", "rediss") or not parts.hostname:
            # The value may carry a password (redis://:password@host): never echo it.
            raise ConfigError(f"{name} must be a redis:// or rediss:// URL with a host, such as redis://localhost:6379/0.")
        return value

    def database(self, name: str, default: str, base_dir: Path) -> dict:
        url = self.optional(name) or default
        scheme = urlsplit(url).scheme
        if scheme not in environ.Env.DB_SCHEMES:
            known = ", ".join(("postgres", "sqlite", "mysql"))
            raise ConfigError(
                f"{name} has an unknown or missing scheme {scheme!r}; "
                f"expected a URL such as {known}://... "
                "(see https://django-environ.readthedocs.io/en/latest/types.html)."
            )
        try:
            database = environ.Env.db_url_config(url)
        except Exception:
            raise ConfigError(f"{name} could not be parsed as a database URL.") from None
        if database["ENGINE"] == "django.db.backends.sqlite3":
            if database["NAME"] in ("", ":memory:"):
                database["NAME"] = database["NAME"] or ":memory:"
            elif not Path(database["NAME"]).is_absolute():
                database["NAME"] = str(base_dir / database["NAME"])
        elif not database.get("NAME"):
            raise ConfigError(f"{name} names no database (the path part of the URL is empty).")
        return database

    def cache(self, name: str, default: str) -> dict:
        url = self.optional(name) or default
        scheme = urlsplit(url).scheme
        if scheme in _CACHE_SCHEME_ALIASES:
            url = _CACHE_SCHEME_ALIASES[scheme] + url[len(scheme):]
            scheme = _CACHE_SCHEME_ALIASES[scheme]
        if scheme not in environ.Env.CACHE_SCHEMES:
            raise ConfigError(
                f"{name} has an unknown or missing scheme {scheme!r}; "
                "expected locmem://, redis://host:6379/0, dummy:// or another django-environ cache URL."
            )
        try:
            cache = environ.Env.cache_url_config(url)
        except Exception:
            raise ConfigError(f"{name} could not be parsed as a cache URL.") from None
        if cache["BACKEND"] == REDIS_BACKEND:
            # A Redis that stops answering must cost a second, not a request's worth of time.
            cache.setdefault("OPTIONS", {}).update(
                {"socket_connect_timeout": REDIS_TIMEOUT, "socket_timeout": REDIS_TIMEOUT}
            )
        return cache


def provider_health_cache(cache: dict) -> dict:
    """The circuit breakers' cache: the store of ``cache``, with short timeouts for Redis."""
    health = copy.deepcopy(cache)
    if health["BACKEND"] == REDIS_BACKEND:
        health.setdefault("OPTIONS", {}).update(
            {"socket_connect_timeout": PROVIDER_HEALTH_REDIS_TIMEOUT, "socket_timeout": PROVIDER_HEALTH_REDIS_TIMEOUT}
        )
    return health


def parse_cloudinary_url(url: str) -> CloudinaryAccount:
    """Split ``cloudinary://API_KEY:API_SECRET@CLOUD_NAME`` into its three parts."""
    parts = urlsplit(url)
    try:
        api_key, api_secret, cloud_name = parts.username, parts.password, parts.hostname
    except ValueError:
        api_key = api_secret = cloud_name = None
    if parts.scheme != "cloudinary" or not (api_key and api_secret and cloud_name):
        raise ConfigError(
            "CLOUDINARY_URL must look like cloudinary://API_KEY:API_SECRET@CLOUD_NAME "
            "(copy it from the Cloudinary console's API Keys page)."
        )
    return CloudinaryAccount(
        cloud_name=unquote(cloud_name), api_key=unquote(api_key), api_secret=unquote(api_secret)
    )


def _storage_providers(reader: _Reader) -> tuple[str, ...]:
    names = [name.lower() for name in reader.comma_list("STORAGE_PROVIDERS", DEFAULT_STORAGE_PROVIDERS)]
    if not names:
        raise ConfigError("STORAGE_PROVIDERS must name at least one provider.")
    unknown = [name for name in names if name not in PROVIDER_NAMES]
    if unknown:
        raise ConfigError(
            f"STORAGE_PROVIDERS has unknown provider(s) {', '.join(unknown)}; "
            f"choose from {', '.join(PROVIDER_NAMES)}."
        )
    if len(set(names)) != len(names):
        raise ConfigError("STORAGE_PROVIDERS names a provider more than once.")
    return tuple(names)


def _cloudinary_folder(reader: _Reader) -> str:
    folder = reader.string("CLOUDINARY_FOLDER", DEFAULT_CLOUDINARY_FOLDER).strip("/")
    # A stored name carries its folder before a colon (storage_backends.cloudinary).
    if not re.fullmatch(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*", folder):
        raise ConfigError(
            "CLOUDINARY_FOLDER must be a folder path of letters, digits, - and _, such as stremora or sites/stremora."
        )
    return folder


def _path(reader: _Reader, name: str, default: Path, base_dir: Path) -> Path:
    value = reader.optional(name)
    path = Path(value).expanduser() if value else default
    return path if path.is_absolute() else base_dir / path


def load_config(environ_mapping: Mapping[str, str], base_dir: Path) -> Config:
    """Read and validate every Stremora setting from ``environ_mapping``.

    Relative paths (MEDIA_ROOT, a SQLite database) are taken from ``base_dir``.
    """
    reader = _Reader(environ_mapping)
    debug = reader.boolean("DEBUG", False)

    secret_key = reader.optional("SECRET_KEY")
    if secret_key is None:
        if not debug:
            raise ConfigError(
                "SECRET_KEY is required when DEBUG is off. Set it in the environment or in .env "
                "(see .env.example); generate one with: "
                "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
            )
        secret_key = DEVELOPMENT_SECRET_KEY

    cloudinary_url = reader.optional("CLOUDINARY_URL")
    cache = reader.cache("CACHE_URL", DEFAULT_CACHE_URL)

    return Config(
        secret_key=secret_key,
        debug=debug,
        allowed_hosts=reader.comma_list("ALLOWED_HOSTS", ",".join(DEFAULT_ALLOWED_HOSTS)),
        database=reader.database("DATABASE_URL", f"sqlite:///{base_dir / 'db.sqlite3'}", base_dir),
        cache=cache,
        provider_health_cache=provider_health_cache(cache),
        storage_providers=_storage_providers(reader),
        cloudinary=parse_cloudinary_url(cloudinary_url) if cloudinary_url else None,
        cloudinary_upload_prefix=reader.http_url("CLOUDINARY_UPLOAD_PREFIX", DEFAULT_CLOUDINARY_UPLOAD_PREFIX),
        cloudinary_delivery_prefix=reader.http_url("CLOUDINARY_DELIVERY_PREFIX", DEFAULT_CLOUDINARY_DELIVERY_PREFIX),
        cloudinary_folder=_cloudinary_folder(reader),
        cloudinary_legacy_names=reader.choice("CLOUDINARY_LEGACY_NAMES", CLOUDINARY_LEGACY_NAME_STYLES),
        aws_access_key_id=reader.optional("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=reader.optional("AWS_SECRET_ACCESS_KEY"),
        aws_region=reader.string("AWS_REGION", "us-east-1"),
        aws_s3_bucket_name=reader.optional("AWS_S3_BUCKET_NAME"),
        aws_s3_endpoint_url=reader.http_url("AWS_S3_ENDPOINT_URL", None),
        aws_s3_url_expiry=reader.integer("AWS_S3_URL_EXPIRY", 3600),
        media_root=_path(reader, "MEDIA_ROOT", base_dir / "media", base_dir),
        storage_timeout=reader.positive_number("STORAGE_TIMEOUT", 30.0),
        storage_breaker_failures=reader.integer("STORAGE_BREAKER_FAILURES", 3),
        storage_breaker_cooldown=reader.positive_number("STORAGE_BREAKER_COOLDOWN", 60.0),
        max_upload_mb=reader.integer("MAX_UPLOAD_MB", 2048),
        cloudinary_max_mb=reader.optional_integer("CLOUDINARY_MAX_MB"),
        s3_max_mb=reader.optional_integer("S3_MAX_MB"),
        local_max_mb=reader.optional_integer("LOCAL_MAX_MB"),
        request_body_timeout=reader.positive_number("REQUEST_BODY_TIMEOUT", 10.0),
        request_body_min_rate_kb=reader.integer("REQUEST_BODY_MIN_RATE_KB", 32),
        upload_session_ttl=reader.integer("UPLOAD_SESSION_TTL", 86400, minimum=60),
        provider_wait_slots=reader.optional_integer("PROVIDER_WAIT_SLOTS"),
        https_only=reader.boolean("HTTPS_ONLY", False),
        num_proxies=reader.integer("NUM_PROXIES", 0, minimum=0),
        metrics_token=_metrics_token(reader),
        celery_broker_url=reader.redis_url("CELERY_BROKER_URL"),
        storage_cleanup_delete=reader.boolean("STORAGE_CLEANUP_DELETE", False),
    )


def _metrics_token(reader: _Reader) -> str | None:
    token = reader.optional("METRICS_TOKEN")
    if token is not None and len(token) < METRICS_TOKEN_MIN_LENGTH:
        # The value is a credential: its length is said, never the value.
        raise ConfigError(
            f"METRICS_TOKEN must be at least {METRICS_TOKEN_MIN_LENGTH} characters; "
            "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    return token
