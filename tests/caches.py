"""Cache backends that fail on purpose, for the tests of what uses the cache."""

from django.core.cache.backends.locmem import LocMemCache

from tests.s3_server import free_port


class RecountFailingCache(LocMemCache):
    """A cache that has lost the failure count (``incr`` finds no key) and then fails."""

    def incr(self, key, delta=1, version=None):
        raise ValueError(f"Key '{key}' not found")

    def set(self, *args, **kwargs):
        raise ConnectionError("the cache went away")


def unreachable_redis_caches():
    """A CACHES setting whose default cache is a Redis address nothing listens on."""
    return {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
