"""Django settings for Stremora.

Every value an operator sets comes from the environment (or a ``.env`` file) and is
parsed in ``stremora.config``; this module only maps it onto Django's names.
The variables are documented in ``.env.example``.
"""

import os
from datetime import timedelta
from pathlib import Path

import environ

from stremora.config import ConfigError, load_config

BASE_DIR = Path(__file__).resolve().parent.parent

# STREMORA_ENV_FILE names the dotenv file to read (empty: read none). Variables
# already in the environment always win over the file.
_env_file = os.environ.get("STREMORA_ENV_FILE", str(BASE_DIR / ".env"))
if _env_file and Path(_env_file).is_file():
    environ.Env.read_env(_env_file)

try:
    CONFIG = load_config(os.environ, BASE_DIR)
except ConfigError as exc:
    # A clear one-line message instead of a traceback through Django's settings loader.
    raise SystemExit(f"Stremora configuration error: {exc}") from None

SECRET_KEY = CONFIG.secret_key
DEBUG = CONFIG.debug
ALLOWED_HOSTS = CONFIG.allowed_hosts

INSTALLED_APPS = [
    "stremora.admin_site.StremoraAdminConfig",  # django.contrib.admin, login throttled
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "storage_backends",
    "videos",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "stremora.content_security_policy.ContentSecurityPolicyMiddleware",
    # Static files (after collectstatic) straight from the app server, in production too.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # Decides which request bodies may be read, before CsrfViewMiddleware reads form posts.
    "videos.upload_limits.RequestBodyMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "stremora.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "stremora.wsgi.application"
ASGI_APPLICATION = "stremora.asgi.application"

# Connections are kept between requests and checked before reuse: a connection the
# server dropped (restart, failover, idle timeout) is replaced, not an error.
DATABASES = {"default": {**CONFIG.database, "CONN_MAX_AGE": 60, "CONN_HEALTH_CHECKS": True}}
# The circuit breakers keep provider health in the same store, with short timeouts of
# their own (storage_backends/breaker.py).
CACHES = {"default": CONFIG.cache, "provider_health": CONFIG.provider_health_cache}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_URL = "/media/"
MEDIA_ROOT = CONFIG.media_root

STORAGES = {
    # The fallback chain over STORAGE_PROVIDERS; Video's files use it.
    "default": {"BACKEND": "storage_backends.chain.FallbackStorage"},
    # The same chain for thumbnails: it reads their django-cloudinary-storage names
    # (CLOUDINARY_LEGACY_NAMES) as image resources.
    "thumbnails": {"BACKEND": "storage_backends.chain.FallbackStorage", "OPTIONS": {"legacy_resource_type": "image"}},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Storage providers. Names match the environment variables; credentials are held
# under names Django's error reports always mask (…KEY, …SECRET).
STORAGE_PROVIDERS = list(CONFIG.storage_providers)
CLOUDINARY_CLOUD_NAME = CONFIG.cloudinary.cloud_name if CONFIG.cloudinary else None
CLOUDINARY_API_KEY = CONFIG.cloudinary.api_key if CONFIG.cloudinary else None
CLOUDINARY_API_SECRET = CONFIG.cloudinary.api_secret if CONFIG.cloudinary else None
CLOUDINARY_UPLOAD_PREFIX = CONFIG.cloudinary_upload_prefix
CLOUDINARY_DELIVERY_PREFIX = CONFIG.cloudinary_delivery_prefix
CLOUDINARY_FOLDER = CONFIG.cloudinary_folder
CLOUDINARY_LEGACY_NAMES = CONFIG.cloudinary_legacy_names
AWS_ACCESS_KEY_ID = CONFIG.aws_access_key_id
AWS_SECRET_ACCESS_KEY = CONFIG.aws_secret_access_key
AWS_REGION = CONFIG.aws_region
AWS_S3_BUCKET_NAME = CONFIG.aws_s3_bucket_name
AWS_S3_ENDPOINT_URL = CONFIG.aws_s3_endpoint_url
AWS_S3_URL_EXPIRY = CONFIG.aws_s3_url_expiry
STORAGE_TIMEOUT = CONFIG.storage_timeout
STORAGE_BREAKER_FAILURES = CONFIG.storage_breaker_failures
STORAGE_BREAKER_COOLDOWN = CONFIG.storage_breaker_cooldown
MAX_UPLOAD_MB = CONFIG.max_upload_mb
CLOUDINARY_MAX_MB = CONFIG.cloudinary_max_mb
S3_MAX_MB = CONFIG.s3_max_mb
LOCAL_MAX_MB = CONFIG.local_max_mb
# A request body may take REQUEST_BODY_TIMEOUT seconds plus one second per
# REQUEST_BODY_MIN_RATE_KB kilobytes received; a slower one is cut off (videos.body_pacing).
REQUEST_BODY_TIMEOUT = CONFIG.request_body_timeout
REQUEST_BODY_MIN_RATE_KB = CONFIG.request_body_min_rate_kb
# Seconds a direct upload (POST /api/uploads/) may take before it is abandoned and swept.
UPLOAD_SESSION_TTL = CONFIG.upload_session_ttl
# Web requests of this machine that may wait on a provider at once (videos.provider_slots).
PROVIDER_WAIT_SLOTS = CONFIG.provider_wait_slots
# Uploads spill to temporary files past Django's 2.5 MB, so memory stays flat; the
# first handler refuses anything over MAX_UPLOAD_MB as it arrives.
FILE_UPLOAD_HANDLERS = [
    "videos.upload_limits.UploadSizeLimitHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

# /metrics (videos.metrics): a scraper sending "Authorization: Bearer METRICS_TOKEN" is let
# in; unset, only loopback connections and staff sessions are.
METRICS_TOKEN = CONFIG.metrics_token
# Background jobs (videos/jobs.py) on Celery. With a broker they go to
# `celery -A stremora worker` processes, and `celery -A stremora beat` sends the
# periodic ones; without one every job runs inline, in the process that asks for it.
CELERY_TASK_ALWAYS_EAGER = CONFIG.celery_broker_url is None
CELERY_BROKER_URL = CONFIG.celery_broker_url or "memory://"  # inline, no job reaches it
# A job acknowledged only once it has run, and given back when its worker dies, runs
# again elsewhere: every job is idempotent. One job at a time per worker process, so a
# long move never holds others back behind it.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True  # outcomes are written on the rows (Video.move_status, processing)
CELERY_RESULT_EXPIRES = None  # no result backend: nothing for beat to clean up
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # LOGGING below stays in charge
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Asking for a job must not hang a request when Redis is down: a few seconds, then the
# caller records that the job could not be queued (videos/job_queue.py).
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 0.5}
# Redis gives a job that was taken but not acknowledged (its worker was killed) to
# another worker after the visibility timeout. A job still running past it is started
# a second time, which costs only work: the second move skips the row the first holds
# locked, a second processing finds the video done. An hour covers a move of a large
# file; a worker stopped gracefully hands its jobs back at once.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 60 * 60, "socket_connect_timeout": 2}
CELERY_BEAT_SCHEDULE = {
    "retry-deletions": {"task": "videos.jobs.retry_deletions", "schedule": timedelta(minutes=10)},
    "process-pending-uploads": {"task": "videos.jobs.process_pending_uploads", "schedule": timedelta(minutes=10)},
    "sweep-expired-uploads": {"task": "videos.jobs.sweep_expired_uploads", "schedule": timedelta(hours=1)},
    "cleanup-orphans": {"task": "videos.jobs.cleanup_orphans", "schedule": timedelta(days=1)},
    "verify-files": {"task": "videos.jobs.verify_files", "schedule": timedelta(days=1)},
}
# The daily orphan sweep deletes what it finds only when this is on; else it reports.
STORAGE_CLEANUP_DELETE = CONFIG.storage_cleanup_delete

# Error pages (DEBUG) and error e-mails blank credentials, those inside URLs too.
DEFAULT_EXCEPTION_REPORTER_FILTER = "stremora.error_reports.CredentialMaskingFilter"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "storage_backends": {"level": "INFO"},
        "videos": {"level": "INFO"},
    },
}

# The REST API.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticatedOrReadOnly"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "videos.api.filters.BoundedSearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "videos.api.pagination.VideoPagination",
    "DEFAULT_THROTTLE_CLASSES": [
        "videos.api.throttling.AnonThrottle",
        "videos.api.throttling.UserThrottle",
    ],
    # login_*: POST /api/auth/token/ and the admin's login, together, per client address
    # and per username.
    "DEFAULT_THROTTLE_RATES": {
        "anon": "120/minute",
        "user": "600/minute",
        "login_address": "10/minute",
        "login_username": "10/minute",
    },
    # Proxies in front of the server: throttles count the client address as the
    # outermost of them saw it. 0 ignores X-Forwarded-For, which a client can forge.
    "NUM_PROXIES": CONFIG.num_proxies,
    "DEFAULT_SCHEMA_CLASS": "videos.api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "videos.api.errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Stremora API",
    "DESCRIPTION": (
        "Videos stored on Cloudinary, with automatic fallback to Amazon S3.\n\n"
        "Two ways to upload: `POST /api/videos/` with the file in a multipart body, for small files "
        "and simple clients; or a direct upload (`/api/uploads/`), where the client sends the bytes "
        "straight to the storage provider the server picks, in parts it can resume, and the server "
        "checks the file before it writes the video. The Python client `stremora_client` does the "
        "second for you: `python -m stremora_client upload FILE --title T --url URL --token KEY`.\n\n"
        "Every answer an operation can give is listed under it, errors included (`detail`, or each "
        "field's messages for a 400). In a JSON body each value must have the type shown here; "
        "text never holds a null character."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # The docs page's Swagger UI is served from this site, not from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "videos.api.schema.document_limits",
    ],
    "ENUM_NAME_OVERRIDES": {
        "StorageProviderEnum": "videos.models.StorageProvider",
        "UploadStatusEnum": "videos.models.UploadSession.Status",
    },
}

# Served over HTTPS only (production): redirects, secure cookies, HSTS. Behind a proxy
# that terminates TLS, the proxy must set X-Forwarded-Proto (see docs/production.md).
if CONFIG.https_only:
    SECURE_SSL_REDIRECT = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = 365 * 24 * 60 * 60
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
