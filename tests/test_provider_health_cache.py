"""The circuit breakers against a real Redis, reached through a proxy that can stop answering.

The caches are built by ``stremora.config`` from one ``CACHE_URL``, as in production:
the breakers' ``provider_health`` alias shares the default cache's Redis with timeouts
of its own.
"""

import logging
import time

import pytest
from django.core.cache import caches
from django.core.files.base import ContentFile
from django.test import override_settings

from storage_backends import breaker as breaker_module
from storage_backends.breaker import CircuitBreaker
from storage_backends.chain import FallbackStorage
from stremora.config import load_config
from tests.fault_proxy import FaultProxy
from tests.stack import ROOT, RedisServer

UPLOADS = 10


@pytest.fixture(scope="module")
def redis_server():
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_proxy(redis_server):
    redis_server.flush()
    with FaultProxy("127.0.0.1", redis_server.port) as proxy:
        yield proxy


@pytest.fixture
def cloudinary_failing(settings, cloudinary_server):
    settings.STORAGE_PROVIDERS = ["cloudinary", "local"]
    settings.STORAGE_BREAKER_FAILURES = 2
    cloudinary_server.fail("http_500", actions=["upload"])
    return cloudinary_server


def redis_caches(proxy):
    """``CACHES`` as settings.py builds it for ``CACHE_URL`` pointing at the proxy."""
    config = load_config({"DEBUG": "1", "CACHE_URL": f"redis://127.0.0.1:{proxy.port}/0"}, ROOT)
    return {"default": config.cache, "provider_health": config.provider_health_cache}


def timed_saves(count):
    names, durations = [], []
    for number in range(count):
        started = time.monotonic()
        names.append(FallbackStorage().save(f"videos/clip{number}.mp4", ContentFile(b"upload %d" % number)))
        durations.append(time.monotonic() - started)
    return names, durations


def test_the_breakers_live_in_the_default_caches_redis(cloudinary_failing, redis_server, redis_proxy):
    with override_settings(CACHES=redis_caches(redis_proxy)):
        timed_saves(2)

        open_until = caches["default"].get("stremora:breaker:cloudinary:open_until")
        assert open_until is not None and CircuitBreaker("cloudinary").open_until() == open_until
    assert ":1:stremora:breaker:cloudinary:open_until" in redis_server.keys()


def test_a_redis_that_stops_answering_costs_uploads_a_moment_and_failures_still_trip(
    cloudinary_failing, redis_proxy, caplog
):
    redis_proxy.set_mode("hang")

    with override_settings(CACHES=redis_caches(redis_proxy)):
        with caplog.at_level(logging.WARNING, logger="storage_backends.breaker"):
            names, durations = timed_saves(UPLOADS)

    assert all(name.startswith("local:") for name in names)
    # The default cache's timeout is a second; the breakers' own is 0.1 s, paid once.
    assert max(durations) < 0.5, durations
    assert sum(durations) < 1.0, durations
    assert redis_proxy.connections == 1  # asked once, then left alone
    assert cloudinary_failing.requests["upload"] == 2  # tripped in this process's own record
    assert [record.getMessage() for record in caplog.records if record.name == "storage_backends.breaker"] == [
        "Provider health cache unreachable (TimeoutError); this process keeps its own record for 5 s"
    ]


def test_a_redis_that_answers_again_is_used_again_after_a_few_seconds(
    cloudinary_failing, redis_server, redis_proxy, monkeypatch
):
    monkeypatch.setattr(breaker_module, "SHARED_CACHE_RETRY_AFTER", 0.5)
    redis_proxy.set_mode("hang")

    with override_settings(CACHES=redis_caches(redis_proxy)):
        timed_saves(1)
        redis_proxy.set_mode("pass")
        timed_saves(1)
        assert redis_server.keys() == []  # still within the pause: counted in process
        time.sleep(0.6)
        timed_saves(1)

    # The failure counted after the pause, and its record for /api/health/.
    assert redis_server.keys() == [
        ":1:stremora:breaker:cloudinary:failures",
        ":1:stremora:breaker:cloudinary:last_failure",
    ]
