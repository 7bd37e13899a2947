"""The configured providers: one Storage object each, built from settings once and reused.

What each provider needs and how it is built is its own module's ``PROVIDER``
(see ``storage_backends.registry``).
"""

import concurrent.futures
import threading

from django.conf import settings
from django.core.signals import setting_changed

from storage_backends import registry, signals
from storage_backends.errors import ProviderNotConfigured

_storages = {}
_lock = threading.Lock()
# Checks run on a small pool per provider: a check given up on keeps its thread until
# the provider's own timeout ends it, so a provider that hangs holds up only its own
# checks, never another provider's.
CHECKS_PER_PROVIDER = 2
_check_pools = {}


def missing_settings(provider):
    """The environment variables ``provider`` still needs; empty when it is configured."""
    provider_spec = registry.spec(provider)
    missing = [
        variable
        for variable, setting_names in provider_spec.required_settings.items()
        if not all(getattr(settings, name, None) for name in setting_names)
    ]
    paired = provider_spec.paired_settings
    if any(getattr(settings, name, None) for name in paired):
        missing += [name for name in paired if not getattr(settings, name, None)]
    return missing


def is_configured(provider):
    return not missing_settings(provider)


def get_storage(provider):
    """The Storage of ``provider``; raises ProviderNotConfigured when it lacks credentials."""
    provider_spec = registry.spec(provider)
    storage = _storages.get(provider)
    if storage is None:
        with _lock:
            storage = _storages.get(provider)
            if storage is None:
                if not is_configured(provider):
                    raise ProviderNotConfigured(provider)
                storage = _storages[provider] = provider_spec.build()
    return storage


def check(provider):
    """Run ``provider``'s cheap check (it raises when the provider does not answer), timed."""
    storage = get_storage(provider)
    with signals.timed(provider, "check"):
        storage.check()


def warm_up(names):
    """Build the storages of the configured providers among ``names``, and the SDK
    clients of those that keep one (``warm_up()``), as a web worker starts
    (``gunicorn.conf.py``); building a client calls no provider."""
    for provider in names:
        if is_configured(provider):
            warm_up_storage = getattr(get_storage(provider), "warm_up", None)
            if warm_up_storage is not None:
                warm_up_storage()


def start_check(provider):
    """``check(provider)`` on its provider's pool; returns its Future."""
    with _lock:
        pool = _check_pools.get(provider)
        if pool is None:
            pool = _check_pools[provider] = concurrent.futures.ThreadPoolExecutor(
                max_workers=CHECKS_PER_PROVIDER, thread_name_prefix=f"check-{provider}"
            )
    return pool.submit(check, provider)


def check_within(provider, timeout):
    """``check(provider)``, given up with TimeoutError after ``timeout`` seconds (None:
    bounded by the provider's own STORAGE_TIMEOUT alone)."""
    if timeout is None:
        check(provider)
        return
    try:
        start_check(provider).result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        raise TimeoutError(f"no answer within {timeout:g} s") from None


def max_bytes(provider):
    """The largest file ``provider`` takes, in bytes; None when it sets no limit."""
    setting = registry.spec(provider).max_mb_setting
    megabytes = getattr(settings, setting, None) if setting else None
    return None if megabytes is None else megabytes * 1024 * 1024


def takes_size(provider, size):
    """Whether ``provider`` takes a file of ``size`` bytes (an unknown size: yes)."""
    limit = max_bytes(provider)
    return size is None or limit is None or size <= limit


def credentials():
    """Every credential value in the settings, and those the built storages found
    themselves (boto3's default chain), to be kept out of messages."""
    names = [name for provider_spec in registry.specs() for name in provider_spec.secret_settings]
    secrets = [value for value in (getattr(settings, name, None) for name in names) if value]
    for provider_spec in registry.specs():
        storage = _storages.get(provider_spec.name)
        if storage is not None and provider_spec.resolved_secrets is not None:
            secrets += [value for value in provider_spec.resolved_secrets(storage) if value]
    return secrets


def reset(provider=None):
    """Forget the storage built for ``provider`` (all when None); the next use rebuilds it."""
    with _lock:
        if provider is None:
            _storages.clear()
        else:
            _storages.pop(provider, None)


def _on_setting_changed(setting, **kwargs):
    for provider_spec in registry.specs():
        if setting in provider_spec.built_from:
            reset(provider_spec.name)


setting_changed.connect(_on_setting_changed)
