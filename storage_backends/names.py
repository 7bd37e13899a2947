"""Stored names: unique by construction, and qualified with the provider that holds them.

The fallback chain stores ``videos/2026/11/clip_k2P9xQa.mp4`` on S3 under the name
``s3:videos/2026/11/clip_k2P9xQa.mp4``, so any later ``url()``, ``open()`` or
``delete()`` goes straight to S3. A name with no provider prefix was written before
the chain existed (or by django-cloudinary-storage: ``CLOUDINARY_LEGACY_NAMES``) and
lives on Cloudinary.
"""

import os
import pathlib

from django.core.exceptions import SuspiciousFileOperation
from django.core.files.utils import validate_file_name
from django.utils.crypto import get_random_string

from storage_backends.registry import PROVIDER_NAMES

LEGACY_PROVIDER = "cloudinary"
PREFIX_SEPARATOR = ":"
LONGEST_PREFIX = max(len(name) for name in PROVIDER_NAMES) + len(PREFIX_SEPARATOR)
SUFFIX_LENGTH = 7


def qualify(provider, key):
    return f"{provider}{PREFIX_SEPARATOR}{key}"


def split(name):
    """``(provider, key)`` of a stored name; unprefixed names are the legacy provider's."""
    provider, separator, key = name.partition(PREFIX_SEPARATOR)
    if separator and provider in PROVIDER_NAMES:
        return provider, key
    return LEGACY_PROVIDER, name


def is_qualified(name):
    """Whether ``name`` carries its provider's prefix (else it is a legacy name)."""
    provider, separator, _ = name.partition(PREFIX_SEPARATOR)
    return bool(separator) and provider in PROVIDER_NAMES


def provider_of(name):
    return split(name)[0]


def unique_name(name, max_length=None):
    """``name`` with a random suffix before its extension, within ``max_length``.

    Names are made unique by construction rather than by asking the provider
    whether a name is free: that would be a network call (and, on Cloudinary, a
    rate-limited Admin API call) per upload.
    """
    name = str(name).replace("\\", "/")
    dir_name, file_name = os.path.split(name)
    if ".." in pathlib.PurePath(dir_name).parts:
        raise SuspiciousFileOperation(f"Detected path traversal attempt in '{dir_name}'")
    validate_file_name(file_name)
    file_ext = "".join(pathlib.PurePath(file_name).suffixes)
    file_root = file_name.removesuffix(file_ext)
    suffix = "_" + get_random_string(SUFFIX_LENGTH)
    if max_length is not None:
        overflow = len(os.path.join(dir_name, file_root + suffix + file_ext)) - max_length
        if overflow > 0:
            file_root = file_root[:-overflow]
            if not file_root:
                raise SuspiciousFileOperation(
                    f'Storage can not find an available filename for "{name}". '
                    'Please make sure that the corresponding file field allows sufficient "max_length".'
                )
    return os.path.join(dir_name, file_root + suffix + file_ext)


class UniqueNamesMixin:
    """A Storage whose ``get_available_name`` never asks the backend whether a name is free."""

    def get_available_name(self, name, max_length=None):
        return unique_name(name, max_length)

    def new_key(self, name):
        """The key a new upload of ``name`` (an available name) is stored under."""
        return name
