"""A circuit breaker per provider, kept in Django's cache so every worker shares it.

After ``STORAGE_BREAKER_FAILURES`` consecutive failures a provider is left out of the
chain for ``STORAGE_BREAKER_COOLDOWN`` seconds. When the cool-down ends the provider
is tried again: one more failure opens the breaker again at once, a success closes it.

The cache is advisory: if it cannot be reached the breaker counts as closed, so a
cache outage costs speed, never an upload.
"""

import logging
import math
import time

from django.conf import settings
from django.core.cache import caches

logger = logging.getLogger(__name__)

KEY_PREFIX = "stremora:breaker"
# Failure counts outlive the cool-down so that a provider that fails again straight
# after it is tried trips again; a success clears them.
FAILURE_COUNT_TTL = 24 * 60 * 60


class CircuitBreaker:
    def __init__(self, provider, cache_alias="default"):
        self.provider = provider
        self.cache_alias = cache_alias
        self._failures_key = f"{KEY_PREFIX}:{provider}:failures"
        self._open_until_key = f"{KEY_PREFIX}:{provider}:open_until"

    @property
    def _cache(self):
        return caches[self.cache_alias]

    def open_until(self):
        """The time (``time.time()``) until which the provider is skipped, or None."""
        try:
            open_until = self._cache.get(self._open_until_key)
        except Exception as exc:
            logger.warning("Provider health cache unreachable (%s); trying %s", type(exc).__name__, self.provider)
            return None
        if open_until is not None and open_until > time.time():
            return open_until
        return None

    def is_open(self):
        return self.open_until() is not None

    def record_success(self):
        try:
            self._cache.delete_many([self._failures_key, self._open_until_key])
        except Exception as exc:
            logger.warning("Provider health cache unreachable (%s)", type(exc).__name__)

    def record_failure(self):
        """Count one failure; returns True when this failure opened the breaker."""
        try:
            self._cache.add(self._failures_key, 0, timeout=FAILURE_COUNT_TTL)
            failures = self._cache.incr(self._failures_key)
            if failures >= settings.STORAGE_BREAKER_FAILURES:
                cooldown = settings.STORAGE_BREAKER_COOLDOWN
                self._cache.set(self._open_until_key, time.time() + cooldown, timeout=math.ceil(cooldown))
                return True
        except ValueError:
            # The count expired between add() and incr(): start again.
            self._cache.set(self._failures_key, 1, timeout=FAILURE_COUNT_TTL)
        except Exception as exc:
            logger.warning("Provider health cache unreachable (%s)", type(exc).__name__)
        return False

    def reset(self):
        self.record_success()
