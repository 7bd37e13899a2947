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

Beside the breaker's state, each provider's record keeps what the server last saw of
it, for ``/api/health/`` and the admin's dashboard: the time of its last success and
the time and credential-free reason of its last counted failure. A success is written
at most every ``LAST_SUCCESS_EVERY`` seconds per process (``record_success`` runs on
every save), so ``last_success`` may lag by that much; a failure is written each time.
"""

import enum
import logging
import math
import threading
import time
from dataclasses import dataclass

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
# Seconds between two writes of a provider's last success by one process.
LAST_SUCCESS_EVERY = 10.0
# How long the last success and failure are kept with nothing newer.
LAST_OUTCOME_TTL = 30 * 24 * 60 * 60

# This process's own record, used while the shared cache is unreachable.
_process_record = LocMemCache("stremora-provider-health", {"TIMEOUT": None, "OPTIONS": {"MAX_ENTRIES": 1000}})
_unreachable_until = {}  # cache alias -> time.monotonic() before which it is not asked
_unreachable_lock = threading.Lock()
_success_written = {}  # (cache alias, provider) -> time.monotonic() of this process's last write


class BreakerState(enum.Enum):
    """A breaker as the health report shows it."""

    CLOSED = "closed"  # the provider is sent uploads
    OPEN = "open"  # cooling down after repeated failures: skipped
    TRYING = "trying"  # cool-down over: the next upload is its trial


@dataclass(frozen=True)
class ProviderRecord:
    """What the breaker knows of a provider: its state and the last outcomes seen.

    Times are ``time.time()`` values, None when nothing was seen (or it expired).
    """

    state: BreakerState
    open_until: float | None
    last_success: float | None
    last_failure: float | None
    last_failure_reason: str | None

    @property
    def last_outcome_failed(self):
        """Whether the latest outcome seen was a failure."""
        return self.last_failure is not None and (self.last_success is None or self.last_failure > self.last_success)


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
        self._last_success_key = f"{KEY_PREFIX}:{provider}:last_success"
        self._last_failure_key = f"{KEY_PREFIX}:{provider}:last_failure"

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

    def record(self):
        """The provider's ``ProviderRecord``, read in one round trip."""
        keys = [self._open_until_key, self._last_success_key, self._last_failure_key]
        values = self._run(lambda cache: cache.get_many(keys), default={})
        open_until = values.get(self._open_until_key)
        if open_until is None:
            state = BreakerState.CLOSED
        elif open_until > time.time():
            state = BreakerState.OPEN
        else:
            state = BreakerState.TRYING
        last_failure, reason = values.get(self._last_failure_key) or (None, None)
        return ProviderRecord(
            state=state,
            open_until=open_until if state is BreakerState.OPEN else None,
            last_success=values.get(self._last_success_key),
            last_failure=last_failure,
            last_failure_reason=reason,
        )

    def record_success(self):
        self._run(lambda cache: cache.delete_many([self._failures_key, self._open_until_key, self._trial_key]))
        written_key = (self.cache_alias, self.provider)
        written = _success_written.get(written_key)
        if written is None or time.monotonic() - written >= LAST_SUCCESS_EVERY:
            _success_written[written_key] = time.monotonic()
            self._run(lambda cache: cache.set(self._last_success_key, time.time(), timeout=LAST_OUTCOME_TTL))

    def record_failure(self, reason=None):
        """Count one failure (``reason``: credential-free, for the health report);
        returns True when this failure opened the breaker."""
        # The next success is written at once, so a recovery shows without waiting.
        _success_written.pop((self.cache_alias, self.provider), None)
        last_failure = (time.time(), reason or "no detail")
        self._run(lambda cache: cache.set(self._last_failure_key, last_failure, timeout=LAST_OUTCOME_TTL))
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
        self._run(lambda cache: cache.delete_many([self._failures_key, self._open_until_key, self._trial_key]))

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
    _success_written.clear()
    _process_record.clear()


def _on_setting_changed(setting, **kwargs):
    if setting == "CACHES":
        forget_process_state()


setting_changed.connect(_on_setting_changed)
