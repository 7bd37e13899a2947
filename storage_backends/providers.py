"""The configured providers: one Storage object each, built from settings once and reused."""

import threading

from django.conf import settings
from django.core.signals import setting_changed

from storage_backends.errors import ProviderNotConfigured
from storage_backends.names import PROVIDER_NAMES

# Settings each provider needs before it can be used.
REQUIRED_SETTINGS = {
    "cloudinary": {"CLOUDINARY_URL": ("CLOUDINARY_CLOUD_NAME", "CLOUDINARY_API_KEY", "CLOUDINARY_API_SECRET")},
    "s3": {
        "AWS_ACCESS_KEY_ID": ("AWS_ACCESS_KEY_ID",),
        "AWS_SECRET_ACCESS_KEY": ("AWS_SECRET_ACCESS_KEY",),
        "AWS_S3_BUCKET_NAME": ("AWS_S3_BUCKET_NAME",),
    },
    "local": {},
}
# Settings each provider's Storage is built from: a change (tests make them) rebuilds it.
# The local provider reads MEDIA_ROOT and MEDIA_URL itself, as FileSystemStorage does.
_BUILT_FROM = {
    "cloudinary": {
        "CLOUDINARY_CLOUD_NAME",
        "CLOUDINARY_API_KEY",
        "CLOUDINARY_API_SECRET",
        "CLOUDINARY_UPLOAD_PREFIX",
        "CLOUDINARY_DELIVERY_PREFIX",
        "STORAGE_TIMEOUT",
    },
    "s3": {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_S3_BUCKET_NAME",
        "AWS_REGION",
        "AWS_S3_ENDPOINT_URL",
        "AWS_S3_URL_EXPIRY",
        "STORAGE_TIMEOUT",
    },
}

_storages = {}
_lock = threading.Lock()


def missing_settings(provider):
    """The environment variables ``provider`` still needs; empty when it is configured."""
    return [
        variable
        for variable, setting_names in REQUIRED_SETTINGS[provider].items()
        if not all(getattr(settings, name, None) for name in setting_names)
    ]


def is_configured(provider):
    return not missing_settings(provider)


def get_storage(provider):
    """The Storage of ``provider``; raises ProviderNotConfigured when it lacks credentials."""
    if provider not in PROVIDER_NAMES:
        raise ValueError(f"Unknown storage provider {provider!r}")
    storage = _storages.get(provider)
    if storage is None:
        with _lock:
            storage = _storages.get(provider)
            if storage is None:
                if not is_configured(provider):
                    raise ProviderNotConfigured(provider)
                storage = _storages[provider] = _build(provider)
    return storage


def _build(provider):
    if provider == "cloudinary":
        from storage_backends.cloudinary import CloudinaryStorage

        return CloudinaryStorage(
            cloud_name=settings.CLOUDINARY_CLOUD_NAME,
            api_key=settings.CLOUDINARY_API_KEY,
            api_secret=settings.CLOUDINARY_API_SECRET,
            upload_prefix=settings.CLOUDINARY_UPLOAD_PREFIX,
            delivery_prefix=settings.CLOUDINARY_DELIVERY_PREFIX,
            timeout=settings.STORAGE_TIMEOUT,
        )
    if provider == "s3":
        from storage_backends.s3 import S3Storage

        return S3Storage(
            access_key=settings.AWS_ACCESS_KEY_ID,
            secret_key=settings.AWS_SECRET_ACCESS_KEY,
            bucket_name=settings.AWS_S3_BUCKET_NAME,
            region_name=settings.AWS_REGION,
            endpoint_url=settings.AWS_S3_ENDPOINT_URL,
            url_expiry=settings.AWS_S3_URL_EXPIRY,
            timeout=settings.STORAGE_TIMEOUT,
        )
    from storage_backends.local import LocalStorage

    return LocalStorage()


def credentials():
    """Every credential value in the settings, to be kept out of messages."""
    names = ("CLOUDINARY_API_KEY", "CLOUDINARY_API_SECRET", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    return [value for value in (getattr(settings, name, None) for name in names) if value]


def reset(provider=None):
    """Forget the storage built for ``provider`` (all when None); the next use rebuilds it."""
    with _lock:
        if provider is None:
            _storages.clear()
        else:
            _storages.pop(provider, None)


def _on_setting_changed(setting, **kwargs):
    for provider, setting_names in _BUILT_FROM.items():
        if setting in setting_names:
            reset(provider)


setting_changed.connect(_on_setting_changed)
