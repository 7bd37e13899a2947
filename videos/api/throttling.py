"""DRF's rate limits, kept in the cache, without letting a cache outage fail requests.

Like the storage circuit breaker, throttling is advisory: with the cache unreachable
requests go unthrottled rather than answered with a 500.
"""

import hashlib
import logging
import math
import unicodedata

from rest_framework.exceptions import APIException
from rest_framework.request import Request
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
    """Sign-ins per client address (see NUM_PROXIES), whoever they sign in as."""

    scope = "login_address"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class LoginUsernameThrottle(CacheFailureTolerant, SimpleRateThrottle):
    """Sign-ins per username, from however many addresses: guessing one account's
    password from a botnet is as slow as from one machine."""

    scope = "login_username"

    def allow_request(self, request, view):
        # The body is read first, outside the cache's guard: a body that does not parse,
        # arrives too slowly or is cut short is the request's fault (a 4xx), not the cache's.
        self.username = submitted_username(request)
        return super().allow_request(request, view)

    def get_cache_key(self, request, view):
        if self.username is None:
            return None  # nothing to count: no password is hashed without a username
        # The admin's form signs in as the NFKC form of what was typed: all the ways of
        # writing one name count as one. Hashed: a username may hold any character, of any
        # length, in a cache key.
        name = unicodedata.normalize("NFKC", self.username).casefold()
        ident = hashlib.sha256(name.encode()).hexdigest()
        return self.cache_format % {"scope": self.scope, "ident": ident}


def submitted_username(request):
    """The username a sign-in names, or None: from the API's parsed body (JSON or form),
    or from the admin's login form. Stripped of surrounding whitespace, as both the token
    serializer and the login form take it."""
    data = request.data if isinstance(request, Request) else request.POST
    username = data.get("username") if hasattr(data, "get") else None
    if not isinstance(username, str):
        return None
    return username.strip() or None


# The address first: a request refused for its address costs no password hash, and its
# username is neither read nor counted.
LOGIN_THROTTLES = [LoginAddressThrottle, LoginUsernameThrottle]


def first_refusal(throttles, request, view=None):
    """The first of ``throttles`` to refuse the request, or None.

    Unlike DRF's own check, this stops at the first refusal, so a throttle after it
    neither reads the request nor counts it.
    """
    for throttle in throttles:
        if not throttle.allow_request(request, view):
            return throttle
    return None


def retry_after(throttle):
    """Whole seconds until ``throttle`` lets a request through again; its whole period
    when DRF has no estimate (concurrent requests counted past the limit)."""
    wait = throttle.wait()
    return math.ceil(wait) if wait is not None else int(throttle.duration)
