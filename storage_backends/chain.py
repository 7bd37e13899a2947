"""The fallback chain: one Django Storage over the ordered providers.

Saving tries each provider of ``STORAGE_PROVIDERS`` in turn and returns a name that
says which one took the file (``s3:videos/…``; see ``storage_backends.names``). Every
other operation goes straight to the provider the name points at, without probing the
others. Nothing here remembers a "last provider": the answer of each save is its own.

A name without a provider prefix is Cloudinary's. With ``CLOUDINARY_LEGACY_NAMES`` set
to ``django-cloudinary-storage`` it is a public_id as that library wrote it, whose
resource type only the field knows: each field's storage says it
(``legacy_resource_type``; the video field's is ``video``, the thumbnail's ``image``).
"""

import logging

from django.conf import settings
from django.core.files.storage import Storage
from django.utils.deconstruct import deconstructible

from storage_backends import providers, signals
from storage_backends.breaker import Admission, CircuitBreaker
from storage_backends.errors import FailureKind, ProviderFailure, StorageUnavailable, TooLargeForProviders
from storage_backends.faults import is_provider_fault
from storage_backends.names import LEGACY_PROVIDER, LONGEST_PREFIX, is_qualified, provider_of, qualify, split, unique_name

logger = logging.getLogger(__name__)

MAX_REASON_LENGTH = 300
# CLOUDINARY_LEGACY_NAMES: unprefixed names are public_ids, as django-cloudinary-storage wrote them.
PUBLIC_ID_NAMES = "django-cloudinary-storage"
SKIP_REASONS = {
    Admission.OPEN: "skipped after repeated failures (circuit open)",
    Admission.TRIAL_UNDER_WAY: "skipped while another upload tries it after its cool-down (circuit half-open)",
}


def describe_failure(exc):
    """A one-line reason for a provider's failure, with every credential blanked out."""
    message = " ".join(str(exc).split()) or "no detail"
    reason = f"{type(exc).__name__}: {message}"
    for secret in providers.credentials():
        reason = reason.replace(secret, "***")
    if len(reason) > MAX_REASON_LENGTH:
        reason = reason[: MAX_REASON_LENGTH - 1] + "…"
    return reason


def _size_of(content):
    try:
        return content.size
    except (AttributeError, OSError, ValueError):
        return None


@deconstructible(path="storage_backends.chain.FallbackStorage")
class FallbackStorage(Storage):
    def __init__(self, providers=None, legacy_resource_type="video"):
        # None: follow settings.STORAGE_PROVIDERS as it is at each save.
        self.providers = tuple(providers) if providers else None
        # The Cloudinary resource type of this field's unprefixed django-cloudinary-storage names.
        self.legacy_resource_type = legacy_resource_type

    def provider_names(self):
        return self.providers or tuple(settings.STORAGE_PROVIDERS)

    def get_available_name(self, name, max_length=None):
        # Room is kept for the provider prefix the save will add.
        return unique_name(name, None if max_length is None else max_length - LONGEST_PREFIX)

    def _save(self, name, content):
        return self._store(name, content, self.provider_names(), via="upload")

    def save_on(self, provider, name, content):
        """Store ``content`` on ``provider`` alone, under ``name`` as it is: moves use it.

        ``name`` is an existing stored key, unique already, so a move keeps it (and a
        move retried after an interruption replaces its own earlier copy).
        """
        return self._store(name, content, [provider], via="move")

    def _store(self, name, content, provider_names, via):
        """Try each provider in turn; the first that stores ``content`` names it."""
        configured = [provider for provider in provider_names if providers.is_configured(provider)]
        failures = {
            provider: ProviderFailure(provider, "not configured", FailureKind.NOT_CONFIGURED)
            for provider in provider_names
            if provider not in configured
        }
        size = _size_of(content)
        fitting = self._fitting(configured, name, size, failures)
        for provider, admission, more_to_try in self._attempt_order(fitting, failures):
            key = self._try(provider, admission, name, content, failures, more_to_try, via)
            if key is not None:
                before = tuple(failures[other] for other in provider_names if other in failures)
                if before:
                    logger.info("Stored %s on %s after: %s", name, provider, "; ".join(map(str, before)))
                stored = qualify(provider, key)
                signals.send(signals.file_stored, provider=provider, name=stored, size=_size_of(content),
                             failures=before, via=via)
                return stored
        reasons = [failures[provider] for provider in provider_names]
        if configured and not fitting:
            largest = max(providers.max_bytes(provider) for provider in configured)
            error = TooLargeForProviders(reasons, size, largest)
        else:
            error = StorageUnavailable(reasons)
        logger.error("%s", error)
        signals.send(signals.store_failed, name=name, failures=error.failures, via=via)
        raise error

    @staticmethod
    def _fitting(configured, name, size, failures):
        """The configured providers whose size limit ``size`` is within; the others are
        passed over without a request, and without counting against their breaker."""
        fitting = []
        for provider in configured:
            if providers.takes_size(provider, size):
                fitting.append(provider)
                continue
            limit_mb = providers.max_bytes(provider) // (1024 * 1024)
            reason = f"the file ({size} bytes) is larger than the {limit_mb} MB it takes"
            logger.info("Storage provider %s skipped for %s: %s", provider, name, reason)
            failures[provider] = ProviderFailure(provider, reason, FailureKind.TOO_LARGE)
        return fitting

    def _attempt_order(self, configured, failures):
        """``(provider, admission, whether another follows)`` in the order to try them.

        Providers whose circuit is open, or half-open with another upload holding the
        trial, are passed over while another may still take the file; when none did,
        they are tried after all, as a last resort: an upload is refused only when
        every configured provider has just failed it. A breaker is read only when its
        provider's turn comes.
        """
        passed_over = []
        for position, provider in enumerate(configured):
            admission = CircuitBreaker(provider).admit()
            if admission.skips:
                failures[provider] = ProviderFailure(provider, SKIP_REASONS[admission], FailureKind.CIRCUIT_OPEN)
                passed_over.append(provider)
            else:
                if admission is Admission.TRIAL:
                    logger.info("Trying %s again after its cool-down: one upload at a time until it answers", provider)
                yield provider, admission, position + 1 < len(configured) or bool(passed_over)
        for position, provider in enumerate(passed_over):
            logger.info("Every other provider failed: trying %s despite its open circuit", provider)
            yield provider, Admission.OPEN, position + 1 < len(passed_over)

    def _try(self, provider, admission, name, content, failures, more_to_try, via):
        """Store on one provider; None (and the reason in ``failures``) when it fails.

        Only a fault of the provider counts toward its breaker: an error about the
        file (see ``storage_backends.faults``), or content that cannot be rewound, is
        passed on to the next provider without counting. A fault may also come after
        the file landed (its answer lost): ``store_uncertain`` says so, for an upload.
        """
        breaker = CircuitBreaker(provider)
        rewound = False
        storage = None
        try:
            content.seek(0)
            rewound = True
            storage = providers.get_storage(provider)
            with signals.timed(provider, "save"):
                key = storage._save(name, content)
        except Exception as exc:
            reason = describe_failure(exc)
            counted = rewound and is_provider_fault(exc)
            if counted:
                outcome = " (circuit opened)" if breaker.record_failure(reason) else ""
            else:
                if admission is Admission.TRIAL:
                    breaker.release_trial()
                outcome = " (about the file: not counted against the provider)"
            logger.warning(
                "Storage provider %s failed to store %s%s: %s%s",
                provider,
                name,
                ", trying the next one" if more_to_try else "",
                reason,
                outcome,
            )
            failures[provider] = ProviderFailure(provider, reason, FailureKind.FAULT if counted else FailureKind.FILE)
            # Not for a move: its key is not new, a retried move writes it again, and a
            # queued removal of it could then take the copy a video uses.
            uncertain = counted and storage is not None and via == "upload"
        else:
            breaker.record_success()
            if admission is Admission.TRIAL:
                logger.info("Storage provider %s took its trial upload: circuit closed", provider)
            failures.pop(provider, None)
            return key
        # Sent once the provider's exception is handled, not while it is: a receiver that
        # fails has its traceback logged, and the provider's raw message (which may name
        # a credential) would come with it as the context.
        if uncertain:
            signals.send(signals.store_uncertain, provider=provider, name=qualify(provider, storage.new_key(name)),
                         reason=reason)
        return None

    def _route(self, name):
        provider, key = split(name)
        storage = providers.get_storage(provider)
        if provider == LEGACY_PROVIDER and not is_qualified(name) and settings.CLOUDINARY_LEGACY_NAMES == PUBLIC_ID_NAMES:
            storage = storage.public_id_names(self.legacy_resource_type)
        return storage, key

    def portable_key(self, name):
        """The key a copy of ``name`` takes on another provider (moves): its path, without
        what only its own provider reads (a Cloudinary folder; a public_id's missing extension)."""
        storage, key = self._route(name)
        path_of = getattr(storage, "path_of", None)
        return path_of(key) if path_of else key

    def _call(self, operation, name, *args, routed=None):
        """``operation`` of the provider that holds ``name`` (``routed``: its ``_route``
        already), timed (``signals.provider_called``)."""
        storage, key = routed or self._route(name)
        with signals.timed(provider_of(name), operation):
            return getattr(storage, operation)(key, *args)

    def _open(self, name, mode="rb"):
        return self._call("open", name, mode)

    def delete(self, name):
        self._call("delete", name)

    def exists(self, name):
        return self._call("exists", name)

    def size(self, name):
        return self._call("size", name)

    def url(self, name):
        return self._call("url", name)

    def signed_url(self, name, expire=None):
        """A URL of ``name`` that expires after ``expire`` seconds where its provider signs
        URLs (local disk); else its ``url()``, already presigned on S3."""
        routed = self._route(name)
        if hasattr(routed[0], "signed_url"):
            return self._call("signed_url", name, expire, routed=routed)
        return self._call("url", name, routed=routed)

    def md5(self, name):
        """The MD5 hex digest of a stored file where its provider keeps one, else None."""
        routed = self._route(name)
        return self._call("md5", name, routed=routed) if hasattr(routed[0], "md5") else None

    def poster_url(self, name):
        """A still frame of a stored video where its provider cuts one on delivery, else None."""
        storage, key = self._route(name)
        poster_url = getattr(storage, "poster_url", None)
        return poster_url(key) if poster_url else None

    def upload_details(self, name):
        """What the provider said of a file when it stored it (e.g. ``duration``); may be empty."""
        storage, key = self._route(name)
        upload_details = getattr(storage, "upload_details", None)
        return upload_details(key) if upload_details else {}

    def path(self, name):
        storage, key = self._route(name)
        return storage.path(key)

    def get_created_time(self, name):
        storage, key = self._route(name)
        return storage.get_created_time(key)

    def get_modified_time(self, name):
        storage, key = self._route(name)
        return storage.get_modified_time(key)
