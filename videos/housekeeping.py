"""Storage housekeeping behind the management commands: health, orphans, verification,
and the record of the last orphan sweeps.

Moves and retried deletions live in ``videos.services`` with the other file rules.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from storage_backends import providers
from storage_backends.chain import PUBLIC_ID_NAMES, describe_failure
from storage_backends.names import PROVIDER_NAMES, split
from videos.models import OrphanSweep, UploadSession, Video

# Sweeps kept per provider: the latest is what /metrics shows; the admin shows a few.
SWEEPS_KEPT = 10


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
    """The state of every provider: in the chain, configured, and whether its cheap check passed."""
    return [provider_status(name) for name in PROVIDER_NAMES]


def provider_status(name, timeout=None):
    """``name``'s state; its check is given up as unreachable after ``timeout`` seconds
    (None: the provider's own ``STORAGE_TIMEOUT`` bounds it)."""
    in_chain = name in settings.STORAGE_PROVIDERS
    missing = providers.missing_settings(name)
    if missing:
        return ProviderStatus(name, in_chain, False, None, "not configured: " + ", ".join(missing))
    try:
        providers.check_within(name, timeout)
    except Exception as exc:
        return ProviderStatus(name, in_chain, True, False, describe_failure(exc))
    return ProviderStatus(name, in_chain, True, True, "ok")


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


def record_sweep(provider, found, deleted):
    """Remember that a sweep of ``provider`` found ``found`` orphans and deleted ``deleted``."""
    OrphanSweep.objects.create(provider=provider, found=found, deleted=deleted)
    stale = OrphanSweep.objects.filter(provider=provider).values_list("pk", flat=True)[SWEEPS_KEPT:]
    OrphanSweep.objects.filter(pk__in=list(stale)).delete()


def last_sweeps(per_provider=1):
    """The latest ``OrphanSweep`` rows of each provider, newest first: ``{provider: [sweep, ...]}``."""
    sweeps = {}
    for sweep in OrphanSweep.objects.all():  # at most SWEEPS_KEPT a provider
        kept = sweeps.setdefault(sweep.provider, [])
        if len(kept) < per_provider:
            kept.append(sweep)
    return sweeps
