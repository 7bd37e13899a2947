import pytest
from django.core.cache import cache

from storage_backends import breaker as breaker_module
from storage_backends.breaker import CircuitBreaker


@pytest.fixture(autouse=True)
def clean_cache(settings):
    settings.STORAGE_BREAKER_FAILURES = 3
    settings.STORAGE_BREAKER_COOLDOWN = 60
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def clock(monkeypatch):
    now = [1_000_000.0]
    monkeypatch.setattr(breaker_module.time, "time", lambda: now[0])
    return now


def test_opens_after_the_configured_consecutive_failures(clock):
    breaker = CircuitBreaker("cloudinary")

    assert breaker.record_failure() is False
    assert breaker.record_failure() is False
    assert not breaker.is_open()
    assert breaker.record_failure() is True
    assert breaker.is_open()
    assert breaker.open_until() == clock[0] + 60


def test_a_success_resets_the_count(clock):
    breaker = CircuitBreaker("cloudinary")
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()

    breaker.record_failure()
    breaker.record_failure()
    assert not breaker.is_open()


def test_tried_again_after_the_cooldown_and_reopens_on_one_more_failure(clock):
    breaker = CircuitBreaker("cloudinary")
    for _ in range(3):
        breaker.record_failure()

    clock[0] += 61
    assert not breaker.is_open()  # half-open: the next upload tries the provider
    assert breaker.record_failure() is True
    assert breaker.is_open()

    clock[0] += 61
    breaker.record_success()
    assert not breaker.is_open()
    breaker.record_failure()
    assert not breaker.is_open()


def test_state_is_shared_through_the_cache_and_kept_per_provider(clock):
    for _ in range(3):
        CircuitBreaker("cloudinary").record_failure()

    assert CircuitBreaker("cloudinary").is_open()
    assert not CircuitBreaker("s3").is_open()


def test_an_unreachable_cache_counts_as_closed(settings):
    settings.CACHES = {
        **settings.CACHES,
        "unreachable": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"},
    }
    breaker = CircuitBreaker("cloudinary", cache_alias="unreachable")

    for _ in range(5):
        assert breaker.record_failure() is False
    assert breaker.is_open() is False
    breaker.record_success()
