"""The admin's login is throttled like POST /api/auth/token/, with the same counters: 10
a minute per client address and per username, refused with a 429 before any password is
hashed; a cache outage leaves it working unthrottled."""

import pytest
from django.test import Client, override_settings

from tests.caches import unreachable_redis_caches
from tests.hashers import CountingPasswordHasher

pytestmark = pytest.mark.django_db

LOGIN_URL = "/admin/login/"
WRONG_PASSWORD_ERROR = "Please enter the correct username and password for a staff account."


@pytest.fixture(autouse=True)
def counted_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["tests.hashers.CountingPasswordHasher"]


@pytest.fixture
def hashed(staff_user):
    """How many passwords the requests after the fixtures hashed."""
    start = CountingPasswordHasher.hashed
    return lambda: CountingPasswordHasher.hashed - start


def log_in(username, address, password="wrong", client=None):
    """A login as the admin's form sends it (``next`` is the admin's index)."""
    client = client or Client()
    form = {"username": username, "password": password, "next": "/admin/"}
    return client.post(LOGIN_URL, form, REMOTE_ADDR=address)


def signed_in_as(client, user):
    return client.session.get("_auth_user_id") == str(user.pk)


def assert_throttled(response):
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 60
    assert "Too many login attempts" in response.content.decode()


def test_bad_logins_from_one_address_are_throttled_before_any_password_check(staff_user, hashed):
    refused_so_far = [log_in(f"guess{number}", "203.0.113.10") for number in range(10)]
    refused = log_in("editor", "203.0.113.10", password="pw-editor-1")

    assert [response.status_code for response in refused_so_far] == [200] * 10
    assert all(WRONG_PASSWORD_ERROR in response.content.decode() for response in refused_so_far)
    assert_throttled(refused)
    assert hashed() == 10  # the refused one was never hashed
    assert log_in("someone", "203.0.113.11").status_code == 200  # another address still may


def test_one_username_from_many_addresses_is_throttled(staff_user, hashed):
    statuses = [log_in("editor", f"198.51.100.{number}").status_code for number in range(1, 11)]
    refused = log_in("editor", "198.51.100.99", password="pw-editor-1")

    assert statuses == [200] * 10
    assert_throttled(refused)
    # Every way of writing the name is the same account: another case, spaces around it
    # (the login form strips them), or fullwidth letters (the form's NFKC makes "editor").
    assert_throttled(log_in("EDITOR", "198.51.100.98"))
    assert_throttled(log_in(" editor\t", "198.51.100.95"))
    assert_throttled(log_in("ｅｄｉｔｏｒ", "198.51.100.97"))
    assert hashed() == 10
    assert log_in("other-name", "198.51.100.96").status_code == 200


def test_requests_refused_for_their_address_do_not_count_against_the_username(staff_user):
    for number in range(10):
        log_in(f"guess{number}", "203.0.113.20")
    refused = [log_in("editor", "203.0.113.20").status_code for _ in range(10)]

    assert refused == [429] * 10
    client = Client()
    response = log_in("editor", "203.0.113.21", password="pw-editor-1", client=client)
    assert response.status_code == 302
    assert signed_in_as(client, staff_user)


def test_the_admin_and_the_api_count_together(staff_user, hashed):
    from rest_framework.test import APIClient

    api = APIClient()
    for number in range(5):
        api.post("/api/auth/token/", {"username": f"guess{number}", "password": "x"}, REMOTE_ADDR="192.0.2.5")
    statuses = [log_in(f"admin-guess{number}", "192.0.2.5").status_code for number in range(6)]

    assert statuses == [200] * 5 + [429]
    assert hashed() == 10


def test_a_good_login_under_the_limit_signs_in(staff_user):
    for _ in range(20):
        assert Client().get(LOGIN_URL, REMOTE_ADDR="203.0.113.30").status_code == 200  # showing the form is free
    for number in range(9):
        log_in("editor", "203.0.113.30")
    client = Client()

    response = log_in("editor", "203.0.113.30", password="pw-editor-1", client=client)

    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert signed_in_as(client, staff_user)
    # That was the tenth attempt from the address: a right password counts too.
    assert_throttled(log_in("editor", "203.0.113.30", password="pw-editor-1"))


def test_a_cache_outage_leaves_the_login_working_unthrottled(staff_user, caplog):
    with override_settings(CACHES=unreachable_redis_caches()):
        wrong = [log_in("editor", "203.0.113.40") for _ in range(11)]
        client = Client()
        right = log_in("editor", "203.0.113.40", password="pw-editor-1", client=client)

    assert [response.status_code for response in wrong] == [200] * 11
    assert WRONG_PASSWORD_ERROR in wrong[-1].content.decode()
    assert right.status_code == 302
    assert signed_in_as(client, staff_user)
    assert "Rate limit cache unreachable (ConnectionError); request not throttled" in caplog.text


def test_behind_one_proxy_the_address_it_saw_counts(staff_user, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}

    def from_client(address, forged):
        # The client forged the first entry; the proxy appended the address it saw.
        form = {"username": forged, "password": "wrong", "next": "/admin/"}
        return Client().post(LOGIN_URL, form, HTTP_X_FORWARDED_FOR=f"{forged}, {address}").status_code

    statuses = [from_client("203.0.113.60", forged=f"10.0.0.{number}") for number in range(11)]

    assert statuses == [200] * 10 + [429]
    assert from_client("203.0.113.61", forged="10.0.0.1") == 200


def test_a_count_raced_past_the_limit_still_says_when_to_retry(staff_user):
    """Concurrent requests can each read the count before the others write it, leaving
    more entries than the limit; DRF then has no estimate of the wait."""
    from django.core.cache import cache
    from django.utils import timezone

    now = timezone.now().timestamp()
    cache.set("throttle_login_address_203.0.113.70", [now] * 12, 60)

    assert_throttled(log_in("editor", "203.0.113.70"))
