import logging

import pytest
from django.core.cache import cache

from storage_backends import breaker as breaker_module
from storage_backends.breaker import Admission, CircuitBreaker


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


def test_after_the_cooldown_one_upload_at_a_time_is_the_trial(clock):
    breaker = CircuitBreaker("cloudinary")
    for _ in range(3):
        breaker.record_failure()
    assert breaker.admit() is Admission.OPEN

    clock[0] += 61
    assert breaker.admit() is Admission.TRIAL
    assert CircuitBreaker("cloudinary").admit() is Admission.TRIAL_UNDER_WAY
    assert breaker.admit() is Admission.TRIAL_UNDER_WAY
    assert CircuitBreaker("s3").admit() is Admission.CLOSED


def test_the_trials_failure_opens_again_for_a_whole_cooldown(clock):
    breaker = CircuitBreaker("cloudinary")
    for _ in range(3):
        breaker.record_failure()
    clock[0] += 61
    assert breaker.admit() is Admission.TRIAL

    assert breaker.record_failure() is True
    assert breaker.admit() is Admission.OPEN
    clock[0] += 59
    assert breaker.admit() is Admission.OPEN
    clock[0] += 2
    assert breaker.admit() is Admission.TRIAL  # the failed trial's lease went with it


def test_the_trials_success_closes_for_everyone(clock):
    breaker = CircuitBreaker("cloudinary")
    for _ in range(3):
        breaker.record_failure()
    clock[0] += 61
    assert breaker.admit() is Admission.TRIAL

    breaker.record_success()
    assert [CircuitBreaker("cloudinary").admit() for _ in range(3)] == [Admission.CLOSED] * 3
    assert breaker.record_failure() is False


def test_a_trial_that_proves_nothing_hands_the_trial_on(clock):
    breaker = CircuitBreaker("cloudinary")
    for _ in range(3):
        breaker.record_failure()
    clock[0] += 61
    assert breaker.admit() is Admission.TRIAL

    breaker.release_trial()
    assert breaker.admit() is Admission.TRIAL
    assert breaker.admit() is Admission.TRIAL_UNDER_WAY


def test_a_trial_whose_worker_died_frees_the_provider_after_its_lease(settings, clock):
    settings.STORAGE_TIMEOUT = 30
    breaker = CircuitBreaker("cloudinary")
    for _ in range(3):
        breaker.record_failure()
    clock[0] += 61
    assert breaker.admit() is Admission.TRIAL  # and nothing is ever recorded

    clock[0] += 61
    assert breaker.admit() is Admission.TRIAL_UNDER_WAY  # a hanging attempt may last 2 x 31 s
    clock[0] += 2
    assert breaker.admit() is Admission.TRIAL


def test_an_unreachable_cache_leaves_a_record_in_this_process(settings, caplog):
    settings.CACHES = {
        **settings.CACHES,
        "unreachable": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"},
    }
    breaker = CircuitBreaker("cloudinary", cache_alias="unreachable")

    with caplog.at_level(logging.WARNING, logger="storage_backends"):
        assert [breaker.record_failure() for _ in range(3)] == [False, False, True]
        assert breaker.is_open()
        breaker.record_success()
        assert breaker.admit() is Admission.CLOSED

    assert [record.getMessage() for record in caplog.records] == [
        "Provider health cache unreachable (ConnectionError); this process keeps its own record for 5 s"
    ]


def test_a_cache_failing_while_the_count_is_started_again_is_not_raised(settings):
    settings.CACHES = {**settings.CACHES, "recount_failing": {"BACKEND": "tests.caches.RecountFailingCache"}}
    breaker = CircuitBreaker("cloudinary", cache_alias="recount_failing")

    assert breaker.record_failure() is False  # counted in this process instead
