"""DRF's rate limits, kept in the cache, without letting a cache outage fail requests.

Like the storage circuit breaker, throttling is advisory: with the cache unreachable
requests go unthrottled rather than answered with a 500.
"""

import logging

from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

logger = logging.getLogger(__name__)


class CacheFailureTolerant:
    def allow_request(self, request, view):
        try:
            return super().allow_request(request, view)
        except Exception as exc:
            logger.warning("Rate limit cache unreachable (%s); request not throttled", type(exc).__name__)
            return True


class AnonThrottle(CacheFailureTolerant, AnonRateThrottle):
    pass


class UserThrottle(CacheFailureTolerant, UserRateThrottle):
    pass
