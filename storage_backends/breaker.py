"""A circuit breaker per provider, kept in a shared cache so every worker sees it.

After ``STORAGE_BREAKER_FAILURES`` consecutive failures a provider is left out of the
chain for ``STORAGE_BREAKER_COOLDOWN`` seconds (open). When the cool-down ends the
breaker is half-open: one upload at a time takes a trial lease (an atomic
``cache.add``) and goes to the provider while every other upload keeps skipping it.
The trial's success closes the breaker; its failure opens it again for another
cool-down; a failure over its file (not counted, see ``storage_backends.faults``)
hands the trial to the next upload.

The state lives in the ``provider_health`` cache (the same store as the default
cache, with timeouts of its own short enough to read on every upload; the default
cache when no such alias is configured). A shared cache that fails is not asked
again for ``SHARED_CACHE_RETRY_AFTER`` seconds: meanwhile each process keeps its own
record, so a provider that keeps failing still trips, and a dead cache costs one
short timeout every few seconds instead of one on every call.
"""

import enum
import logging
import math
import threading
import time

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache
from django.core.signals import setting_changed

logger = logging.getLogger(__name__)

KEY_PREFIX = "stremora:breaker"
HEALTH_CACHE_ALIAS = "provider_health"
# The failure count and the time a breaker opened outlive the cool-down, so that the
# half-open state lasts until a trial answers; a success clears them.
FAILURE_COUNT_TTL = 24 * 60 * 60
# Seconds a shared cache that failed is left alone before it is asked again.
SHARED_CACHE_RETRY_AFTER = 5.0

# This process's own record, used while the shared cache is unreachable.
_process_record = LocMemCache("stremora-provider-health", {"TIMEOUT": None, "OPTIONS": {"MAX_ENTRIES": 1000}})
_unreachable_until = {}  # cache alias -> time.monotonic() before which it is not asked
_unreachable_lock = threading.Lock()


class Admission(enum.Enum):
    """What an upload may do with a provider, as its breaker says."""

    CLOSED = "closed"  # send it
    TRIAL = "trial"  # half-open, and this upload holds the trial lease: send it
    OPEN = "open"  # cooling down: skip
    TRIAL_UNDER_WAY = "trial under way"  # half-open, another upload holds the lease: skip

    @property
    def skips(self):
        return self in (Admission.OPEN, Admission.TRIAL_UNDER_WAY)


class CircuitBreaker:
    def __init__(self, provider, cache_alias=None):
        self.provider = provider
        if cache_alias is None:
            cache_alias = HEALTH_CACHE_ALIAS if HEALTH_CACHE_ALIAS in settings.CACHES else "default"
        self.cache_alias = cache_alias
        self._failures_key = f"{KEY_PREFIX}:{provider}:failures"
        self._open_until_key = f"{KEY_PREFIX}:{provider}:open_until"
        self._trial_key = f"{KEY_PREFIX}:{provider}:trial"

    def open_until(self):
        """The time (``time.time()``) until which the provider is skipped, or None."""
        open_until = self._run(lambda cache: cache.get(self._open_until_key), default=None)
        if open_until is not None and open_until > time.time():
            return open_until
        return None

    def state(self):
        """``"closed"``, ``"open"`` (cooling down) or ``"half_open"`` (trials may go), read
        from the record alone: nothing is leased or counted."""
        open_until = self._run(lambda cache: cache.get(self._open_until_key), default=None)
        if open_until is None:
            return "closed"
        return "open" if open_until > time.time() else "half_open"

    def is_open(self):
        """Whether the provider is cooling down (half-open counts as not open)."""
        return self.open_until() is not None

    def admit(self):
        """The ``Admission`` of one upload; ``TRIAL`` means this caller now holds the lease."""
        return self._run(self._admit, default=Admission.CLOSED)

    def _admit(self, cache):
        open_until = cache.get(self._open_until_key)
        if open_until is None:
            return Admission.CLOSED
        if open_until > time.time():
            return Admission.OPEN
        if cache.add(self._trial_key, True, timeout=self._trial_lease()):
            return Admission.TRIAL
        return Admission.TRIAL_UNDER_WAY

    def _trial_lease(self):
        # Long enough for a failing attempt to end (a hanging S3 makes two attempts of
        # STORAGE_TIMEOUT and a second each), so no second trial starts meanwhile; a
        # worker that dies mid-trial keeps the provider out for at most a cool-down more.
        attempt = 2 * (settings.STORAGE_TIMEOUT + 1)
        return math.ceil(max(settings.STORAGE_BREAKER_COOLDOWN, attempt))

    def record_success(self):
        self._run(lambda cache: cache.delete_many([self._failures_key, self._open_until_key, self._trial_key]))

    def record_failure(self):
        """Count one failure; returns True when this failure opened the breaker."""
        return self._run(self._count_failure, default=False)

    def _count_failure(self, cache):
        cache.add(self._failures_key, 0, timeout=FAILURE_COUNT_TTL)
        try:
            failures = cache.incr(self._failures_key)
        except ValueError:
            # The count expired between add() and incr(): start again.
            cache.set(self._failures_key, 1, timeout=FAILURE_COUNT_TTL)
            failures = 1
        tripped_before = cache.get(self._open_until_key) is not None  # open or half-open
        if failures < settings.STORAGE_BREAKER_FAILURES and not tripped_before:
            return False
        cache.set(self._open_until_key, time.time() + settings.STORAGE_BREAKER_COOLDOWN, timeout=FAILURE_COUNT_TTL)
        cache.delete(self._trial_key)
        return True

    def release_trial(self):
        """End a trial that proved nothing (the file was refused): the next upload is the trial."""
        self._run(lambda cache: cache.delete(self._trial_key))

    def reset(self):
        self.record_success()

    def _run(self, operation, default=None):
        """``operation(cache)`` on the shared cache, or on this process's record while it is out."""
        if not _known_unreachable(self.cache_alias):
            try:
                return operation(caches[self.cache_alias])
            except Exception as exc:
                _remember_unreachable(self.cache_alias, exc)
        try:
            return operation(_process_record)
        except Exception as exc:  # the breaker is advisory: never fail an upload over it
            logger.warning("Provider health record failed (%s); counting %s as closed", type(exc).__name__, self.provider)
            return default


def _known_unreachable(alias):
    until = _unreachable_until.get(alias)
    return until is not None and time.monotonic() < until


def _remember_unreachable(alias, exc):
    with _unreachable_lock:
        already_known = _known_unreachable(alias)
        _unreachable_until[alias] = time.monotonic() + SHARED_CACHE_RETRY_AFTER
    if not already_known:
        logger.warning(
            "Provider health cache unreachable (%s); this process keeps its own record for %g s",
            type(exc).__name__,
            SHARED_CACHE_RETRY_AFTER,
        )


def forget_process_state():
    """Drop this process's own record and what it remembers of unreachable caches."""
    with _unreachable_lock:
        _unreachable_until.clear()
    _process_record.clear()


def _on_setting_changed(setting, **kwargs):
    if setting == "CACHES":
        forget_process_state()


setting_changed.connect(_on_setting_changed)
