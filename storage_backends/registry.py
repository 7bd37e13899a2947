"""The providers Stremora knows: one entry each, naming the module that implements it.

A provider is one module of this package with a ``PROVIDER`` (a ``ProviderSpec``):
the settings it needs, the settings its Storage is built from, the ones that are
secret, and how to build the Storage. Adding a provider is that module and one line
in ``PROVIDER_MODULES``; the chain, the upload sessions, the checks and the
commands know providers only through here (``storage_backends.providers``).

This module imports no provider (nor Django's settings) until asked, so that the
project's settings can read the names.
"""

from dataclasses import dataclass, field
from importlib import import_module
from typing import Callable

PROVIDER_MODULES = {
    "cloudinary": "storage_backends.cloudinary",
    "s3": "storage_backends.s3",
    "local": "storage_backends.local",
}
PROVIDER_NAMES = tuple(PROVIDER_MODULES)


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    label: str
    # Builds the provider's Storage from django.conf.settings.
    build: Callable
    # Environment variable -> the settings it fills; all must be set for the provider to be used.
    required_settings: dict = field(default_factory=dict)
    # Settings that go together, all or none: one set without the others is missing them.
    paired_settings: tuple = ()
    # Settings the Storage is built from: a change (tests make them) rebuilds it.
    built_from: frozenset = frozenset()
    # Settings whose values are never to appear in a message.
    secret_settings: tuple = ()
    # Builds the storage's secrets that do not come from settings (e.g. credentials
    # boto3 found itself), to be kept out of messages too: ``storage -> [str]``.
    resolved_secrets: Callable = None
    # The setting holding the largest file, in MB, the provider takes (None: no limit).
    max_mb_setting: str = None


def spec(name) -> ProviderSpec:
    if name not in PROVIDER_MODULES:
        raise ValueError(f"Unknown storage provider {name!r}")
    return import_module(PROVIDER_MODULES[name]).PROVIDER


def specs():
    return [spec(name) for name in PROVIDER_NAMES]
