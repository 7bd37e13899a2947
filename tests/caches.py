"""Cache backends that fail on purpose, for the tests of what uses the cache."""

from django.core.cache.backends.locmem import LocMemCache


class RecountFailingCache(LocMemCache):
    """A cache that has lost the failure count (``incr`` finds no key) and then fails."""

    def incr(self, key, delta=1, version=None):
        raise ValueError(f"Key '{key}' not found")

    def set(self, *args, **kwargs):
        raise ConnectionError("the cache went away")
