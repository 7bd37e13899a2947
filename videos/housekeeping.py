"""Storage housekeeping behind the management commands: health, orphans, verification.

Moves and retried deletions live in ``videos.services`` with the other file rules.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from storage_backends import providers
from storage_backends.chain import PUBLIC_ID_NAMES, describe_failure
from storage_backends.names import PROVIDER_NAMES, split
from videos.models import UploadSession, Video


@dataclass(frozen=True)
class ProviderStatus:
    name: str
    in_chain: bool
    configured: bool
    reachable: bool | None  # None: not checked (not configured)
    detail: str

    @property
    def ok(self):
        return not self.configured or bool(self.reachable)


def provider_statuses():
    statuses = []
    for name in PROVIDER_NAMES:
        in_chain = name in settings.STORAGE_PROVIDERS
        missing = providers.missing_settings(name)
        if missing:
            statuses.append(ProviderStatus(name, in_chain, False, None, "not configured: " + ", ".join(missing)))
            continue
        try:
            providers.get_storage(name).check()
        except Exception as exc:
            statuses.append(ProviderStatus(name, in_chain, True, False, describe_failure(exc)))
        else:
            statuses.append(ProviderStatus(name, in_chain, True, True, "ok"))
    return statuses


def referenced_names():
    """Every stored name a video uses, as ``(provider, key)``."""
    names = set()
    for file_name, thumbnail_name in Video.objects.values_list("file", "thumbnail").iterator():
        for name in (file_name, thumbnail_name):
            if name:
                names.add(split(name))
    return names


def open_upload_keys(provider):
    """Keys of the direct uploads still open on ``provider``: their files are not orphans."""
    stored_key = getattr(providers.get_storage(provider), "direct_uploads", None)
    stored_key = stored_key.stored_key if stored_key else (lambda key: key)
    return {
        stored_key(key)
        for key in UploadSession.objects.still_open().filter(provider=provider).values_list("key", flat=True)
    }


def find_orphans(provider, older_than_hours):
    """Files of ``provider`` that no video references, stored before the grace period;
    the files of a direct upload still open (its partial data too) are left alone."""
    referenced = referenced_names()
    uploading = open_upload_keys(provider)
    cutoff = timezone.now() - timedelta(hours=older_than_hours)
    by_public_id = settings.CLOUDINARY_LEGACY_NAMES == PUBLIC_ID_NAMES  # unprefixed names are public_ids
    for stored in providers.get_storage(provider).iter_files():
        if (provider, stored.key) in referenced or stored.modified > cutoff:
            continue
        if by_public_id and (provider, stored.public_id) in referenced:
            continue
        if any(stored.key.startswith(key) for key in uploading):
            continue
        yield stored


def missing_files(video):
    """Names of the video's files that their provider does not hold (or could not tell)."""
    missing = []
    for field_file in (video.file, video.thumbnail):
        if not field_file:
            continue
        try:
            present = field_file.storage.exists(field_file.name)
        except Exception as exc:
            missing.append(f"{field_file.name} (could not check: {describe_failure(exc)})")
            continue
        if not present:
            missing.append(field_file.name)
    return missing
