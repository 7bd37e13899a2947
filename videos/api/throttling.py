"""DRF's rate limits, kept in the cache, without letting a cache outage fail requests.

Like the storage circuit breaker, throttling is advisory: with the cache unreachable
requests go unthrottled rather than answered with a 500.
"""

import hashlib
import logging

from rest_framework.exceptions import APIException
from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle, UserRateThrottle

logger = logging.getLogger(__name__)


class CacheFailureTolerant:
    def allow_request(self, request, view):
        try:
            return super().allow_request(request, view)
        except APIException:
            raise  # the request's own fault (a body that does not parse), not the cache's
        except Exception as exc:
            logger.warning("Rate limit cache unreachable (%s); request not throttled", type(exc).__name__)
            return True


class AnonThrottle(CacheFailureTolerant, AnonRateThrottle):
    pass


class UserThrottle(CacheFailureTolerant, UserRateThrottle):
    pass


class LoginAddressThrottle(CacheFailureTolerant, SimpleRateThrottle):
    """Token requests per client address (see NUM_PROXIES), whoever they sign in as."""

    scope = "login_address"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class LoginUsernameThrottle(CacheFailureTolerant, SimpleRateThrottle):
    """Token requests per username, from however many addresses: guessing one account's
    password from a botnet is as slow as from one machine."""

    scope = "login_username"

    def allow_request(self, request, view):
        # The body is read first, outside the cache's guard: a body that does not parse,
        # arrives too slowly or is cut short is the request's fault (a 4xx), not the cache's.
        request.data
        return super().allow_request(request, view)

    def get_cache_key(self, request, view):
        data = request.data
        username = data.get("username") if hasattr(data, "get") else None
        if not isinstance(username, str) or not username:
            return None  # nothing to count: the view answers 400 without hashing a password
        # Hashed: a username may hold any character, of any length, in a cache key.
        ident = hashlib.sha256(username.casefold().encode()).hexdigest()
        return self.cache_format % {"scope": self.scope, "ident": ident}
