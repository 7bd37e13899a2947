"""/api/health/ says what the server last saw of each provider, and staff's ?check=1
asks the providers themselves, at most once per window."""

import time

import pytest
from django.core.cache import caches
from django.core.files.base import ContentFile
from django.test import override_settings

from storage_backends import health, providers
from storage_backends.breaker import BreakerState, CircuitBreaker
from storage_backends.chain import FallbackStorage
from tests.caches import unreachable_redis_caches
from tests.test_api import api, client_for  # noqa: F401 (api: a fixture)

CHECKS_OF_CLOUDINARY_AND_LOCAL = f"{health.CHECKS_KEY}:cloudinary,local"


def provider(body, name):
    return next(item for item in body["providers"] if item["name"] == name)


# --- the breaker's record ---------------------------------------------------------------


def test_the_breaker_records_the_last_failure_with_its_reason_and_the_last_success():
    breaker = CircuitBreaker("s3")
    assert breaker.record().last_success is None and breaker.record().last_failure is None

    before = time.time()
    breaker.record_failure("EndpointConnectionError: Could not connect")
    record = breaker.record()

    assert record.last_failure >= before
    assert record.last_failure_reason == "EndpointConnectionError: Could not connect"
    assert record.last_outcome_failed

    breaker.record_success()
    record = breaker.record()
    assert record.last_success >= record.last_failure
    assert not record.last_outcome_failed


def test_a_success_is_written_at_most_every_few_seconds_but_at_once_after_a_failure():
    breaker = CircuitBreaker("s3")
    breaker.record_success()
    first = breaker.record().last_success

    breaker.record_success()  # within LAST_SUCCESS_EVERY: not written again
    assert breaker.record().last_success == first

    breaker.record_failure("boom")
    breaker.record_success()
    assert breaker.record().last_success > first


def test_after_its_cool_down_a_tripped_breaker_reads_trying(settings):
    settings.STORAGE_BREAKER_FAILURES = 1
    settings.STORAGE_BREAKER_COOLDOWN = 0

    CircuitBreaker("s3").record_failure("boom")
    record = CircuitBreaker("s3").record()

    assert (record.state, record.open_until) == (BreakerState.TRYING, None)


# --- what staff and others see ------------------------------------------------------------


def test_a_provider_that_just_failed_makes_health_degraded_though_its_breaker_is_closed(
    api, staff_user, settings, s3_outage
):
    settings.STORAGE_PROVIDERS = ["s3", "local"]

    FallbackStorage().save("videos/clip.mp4", ContentFile(b"falls to disk"))

    body = client_for(staff_user).get("/api/health/").json()
    s3 = provider(body, "s3")
    assert body["status"] == "degraded"
    assert (s3["configured"], s3["available"], s3["breaker"], s3["open_until"]) == (True, True, "closed", None)
    assert s3["last_failure"]["reason"].startswith("EndpointConnectionError: Could not connect")
    assert s3["last_success"] is None
    assert "aws-secret-for-tests" not in str(body) and "AKIAEXAMPLE" not in str(body)
    local = provider(body, "local")
    assert local["last_success"] is not None and local["last_failure"] is None
    assert api.get("/api/health/").json() == {"status": "degraded"}

    s3_outage.stop()
    FallbackStorage().save("videos/clip.mp4", ContentFile(b"on s3 again"))

    body = client_for(staff_user).get("/api/health/").json()
    assert body["status"] == "ok"
    assert provider(body, "s3")["last_success"] > provider(body, "s3")["last_failure"]["at"]


def test_an_open_breaker_says_until_when(staff_user, settings, s3_outage):
    settings.STORAGE_PROVIDERS = ["s3", "local"]
    settings.STORAGE_BREAKER_FAILURES = 1
    settings.STORAGE_BREAKER_COOLDOWN = 60

    FallbackStorage().save("videos/clip.mp4", ContentFile(b"falls to disk"))

    response = client_for(staff_user).get("/api/health/")
    s3 = provider(response.json(), "s3")
    assert response.json()["status"] == "degraded"
    assert (s3["available"], s3["breaker"]) == (False, "open")
    assert s3["open_until"] > s3["last_failure"]["at"]


# --- ?check=1 -----------------------------------------------------------------------------


@pytest.fixture
def cloudinary_and_local(settings, cloudinary_server):
    settings.STORAGE_PROVIDERS = ["cloudinary", "local"]
    return cloudinary_server


def test_check_asks_each_provider_once_per_window(staff_user, cloudinary_and_local):
    staff = client_for(staff_user)

    body = staff.get("/api/health/?check=1").json()

    assert body["status"] == "ok"
    assert provider(body, "cloudinary")["check"]["ok"] is True
    local_check = provider(body, "local")["check"]
    assert (local_check["ok"], local_check["detail"]) == (True, "ok") and local_check["at"]
    assert cloudinary_and_local.requests["ping"] == 1

    cloudinary_and_local.fail("http_500", actions=["ping"])
    for _ in range(5):
        assert staff.get("/api/health/?check=1").json()["status"] == "ok"  # the same round's answers
    assert cloudinary_and_local.requests["ping"] == 1

    caches["default"].delete(CHECKS_OF_CLOUDINARY_AND_LOCAL)  # the window is over
    body = staff.get("/api/health/?check=1").json()
    assert cloudinary_and_local.requests["ping"] == 2
    assert body["status"] == "degraded"
    cloudinary = provider(body, "cloudinary")
    assert (cloudinary["available"], cloudinary["check"]["ok"]) == (False, False)
    assert cloudinary["check"]["detail"].startswith("GeneralError")
    assert cloudinary_and_local.api_secret not in str(body)


def test_without_check_health_calls_no_provider(staff_user, cloudinary_and_local):
    client_for(staff_user).get("/api/health/")

    assert cloudinary_and_local.requests["ping"] == 0


@pytest.mark.parametrize("caller", ["anonymous", "user"])
def test_check_is_ignored_for_anyone_but_staff(api, user, caller, cloudinary_and_local):
    client = api if caller == "anonymous" else client_for(user)

    response = client.get("/api/health/?check=1")

    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    assert cloudinary_and_local.requests["ping"] == 0


@pytest.mark.parametrize("value", ["null", "maybe", "2"])
def test_a_check_that_is_not_true_or_false_is_a_400_for_anyone(api, staff_user, value, cloudinary_and_local):
    for client in (api, client_for(staff_user)):
        response = client.get(f"/api/health/?check={value}")

        assert response.status_code == 400
        assert response.json() == {"check": ["Must be a valid boolean."]}
    assert cloudinary_and_local.requests["ping"] == 0


def test_a_check_that_hangs_is_reported_after_the_timeout(staff_user, cloudinary_and_local, monkeypatch):
    monkeypatch.setattr(health, "CHECK_TIMEOUT", 0.5)
    cloudinary_and_local.fail("hang", actions=["ping"])

    started = time.monotonic()
    body = client_for(staff_user).get("/api/health/?check=1").json()
    elapsed = time.monotonic() - started

    assert elapsed < 0.5 + 1.5  # the timeout, and a margin for a loaded machine
    assert provider(body, "cloudinary")["check"] == {
        "ok": False,
        "detail": "no answer within 0.5 s",
        "at": provider(body, "cloudinary")["check"]["at"],
    }
    assert provider(body, "local")["check"]["ok"] is True  # checked in parallel, within the same wait
    assert body["status"] == "degraded"


def test_a_provider_that_hangs_holds_up_only_its_own_checks(settings, cloudinary_and_local):
    settings.STORAGE_TIMEOUT = 3  # how long each hung check keeps its thread
    cloudinary_and_local.fail("hang", actions=["ping"])
    hung = [providers.start_check("cloudinary") for _ in range(providers.CHECKS_PER_PROVIDER + 2)]

    started = time.monotonic()
    providers.check_within("local", 2)
    assert time.monotonic() - started < 1.5  # not queued behind cloudinary's

    with pytest.raises(TimeoutError, match="no answer within 0.5 s"):
        providers.check_within("cloudinary", 0.5)
    cloudinary_and_local.heal()
    for check in hung:
        check.exception(timeout=10)  # each ends on its provider's timeout or once healed


def test_while_a_round_of_checks_runs_another_request_does_not_start_one(staff_user, cloudinary_and_local):
    caches["default"].add(f"{CHECKS_OF_CLOUDINARY_AND_LOCAL}:running", True)

    body = client_for(staff_user).get("/api/health/?check=1").json()

    assert cloudinary_and_local.requests["ping"] == 0
    assert provider(body, "cloudinary")["check"]["ok"] is None
    assert provider(body, "cloudinary")["check"]["detail"] == health.CHECK_UNDER_WAY


def test_with_the_shared_cache_down_each_process_still_throttles_its_checks(
    staff_user, cloudinary_and_local, caplog
):
    staff = client_for(staff_user)

    with override_settings(CACHES=unreachable_redis_caches()):
        for _ in range(3):
            body = staff.get("/api/health/?check=1").json()
            assert provider(body, "cloudinary")["check"]["ok"] is True

    assert cloudinary_and_local.requests["ping"] == 1
    assert "Health check cache unreachable (ConnectionError); this process throttles its own checks" in caplog.text
