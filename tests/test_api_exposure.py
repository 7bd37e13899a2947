"""What the API tells anonymous callers, and what one request may cost: no account is
listed or confirmed, search is bounded, health says only the status, logins and
anonymous reads are throttled by the real client address."""

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import video_upload
from videos.models import Video

pytestmark = pytest.mark.django_db

LIST_URL = "/api/videos/"


@pytest.fixture(autouse=True)
def local_storage(settings):
    settings.STORAGE_PROVIDERS = ["local"]


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Dozens of logins here: hash with MD5 (tests only), still check the real way."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def quiet_owner(django_user_model):
    """A user with only a draft: nothing of theirs is visible to others."""
    owner = django_user_model.objects.create_user("quiet-owner", "quiet@example.com", "pw-quiet-1")
    Video.objects.create(title="Draft", owner=owner, file=video_upload(), is_published=False)
    return owner


def client_for(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


# --- accounts are not enumerable -------------------------------------------------------


def test_the_browsable_list_names_no_account(api, user, staff_user, quiet_owner):
    Video.objects.create(title="Public clip", owner=staff_user, file=video_upload(), is_published=True)

    page = api.get(LIST_URL, HTTP_ACCEPT="text/html")

    assert page.status_code == 200
    html = page.content.decode()
    assert "Public clip" in html  # the page did render the list
    for name in ("viewer", "editor", "quiet-owner"):
        assert name not in html
    assert "<option" not in html.split('name="owner"')[-1].split("</div>")[0]


def test_the_schema_and_docs_list_no_account(api, user, staff_user, quiet_owner):
    for path in ("/api/schema/", "/api/docs/", "/api/schema/?format=json"):
        body = api.get(path).content.decode()
        for name in ("viewer", "editor", "quiet-owner"):
            assert name not in body, path


def test_an_unknown_owner_answers_like_an_owner_with_nothing_visible(api, user, quiet_owner):
    Video.objects.create(title="Someone's", owner=user, file=video_upload(), is_published=True)
    missing_id = quiet_owner.pk + 1000

    unknown = api.get(LIST_URL, {"owner": missing_id})
    hidden = api.get(LIST_URL, {"owner": quiet_owner.pk})

    assert (unknown.status_code, hidden.status_code) == (200, 200)
    assert unknown.json() == hidden.json() == {"count": 0, "next": None, "previous": None, "results": []}
    assert api.get(LIST_URL, {"owner": "9" * 30}).json() == unknown.json()  # past any integer column
    assert api.get(LIST_URL, {"owner": user.pk}).json()["count"] == 1


@pytest.mark.parametrize("value", ["abc", "1.5"])
def test_a_malformed_owner_id_is_a_400_whoever_exists(api, user, value):
    response = api.get(LIST_URL, {"owner": value})

    assert response.status_code == 400
    assert "owner" in response.json()


# --- search is bounded ------------------------------------------------------------------


def test_a_thousand_word_search_is_a_clear_400(api, user):
    terms = " ".join(f"word{number}" for number in range(1000))

    response = api.get(LIST_URL, {"search": terms})

    assert response.status_code == 400
    assert response.json() == {"search": ["Search for at most 10 words at a time."]}


def test_an_overlong_search_word_is_a_clear_400(api, user):
    response = api.get(LIST_URL, {"search": "x" * 101})

    assert response.status_code == 400
    assert response.json() == {"search": ["Each search word may be at most 100 characters long."]}


def test_a_search_within_the_bounds_still_finds(api, user):
    Video.objects.create(title="Harbour at dawn", owner=user, file=video_upload(), is_published=True)
    Video.objects.create(title="Kitchen tour", owner=user, file=video_upload(), is_published=True)

    words = "harbour " + " ".join(["dawn"] * 9)
    response = api.get(LIST_URL, {"search": words})

    assert response.status_code == 200
    assert [video["title"] for video in response.json()["results"]] == ["Harbour at dawn"]
    assert api.get(LIST_URL, {"search": "h" * 100}).status_code == 200


# --- throttles count the real client address --------------------------------------------


@pytest.fixture
def anon_rate(monkeypatch):
    from videos.api.throttling import AnonThrottle

    monkeypatch.setattr(AnonThrottle, "THROTTLE_RATES", {"anon": "3/minute"})


def test_a_forged_forwarded_for_does_not_reset_the_anonymous_limit(api, anon_rate):
    statuses = [
        api.get(LIST_URL, HTTP_X_FORWARDED_FOR=f"203.0.113.{number}").status_code for number in range(1, 5)
    ]

    assert statuses == [200, 200, 200, 429]


def test_behind_one_proxy_the_address_it_saw_counts(api, anon_rate, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}

    def from_client(address, forged="198.51.100.7"):
        # The client forged the first entry; the proxy appended the address it saw.
        return api.get(LIST_URL, HTTP_X_FORWARDED_FOR=f"{forged}, {address}").status_code

    assert [from_client("203.0.113.1", forged=f"10.0.0.{number}") for number in range(4)] == [200, 200, 200, 429]
    assert from_client("203.0.113.2") == 200


# --- token requests are throttled by address and by username ------------------------------

TOKEN_URL = "/api/auth/token/"


@pytest.fixture
def authentications(monkeypatch):
    """Counts password checks (each one hashes the guess)."""
    from django.contrib.auth.backends import ModelBackend

    calls = []
    authenticate = ModelBackend.authenticate

    def counting(self, request, username=None, password=None, **kwargs):
        calls.append(username)
        return authenticate(self, request, username=username, password=password, **kwargs)

    monkeypatch.setattr(ModelBackend, "authenticate", counting)
    return calls


def log_in(api, username, address, password="wrong"):
    return api.post(TOKEN_URL, {"username": username, "password": password}, REMOTE_ADDR=address)


def test_bad_logins_from_one_address_are_throttled_before_any_password_check(api, user, authentications):
    statuses = [log_in(api, f"guess{number}", "203.0.113.10").status_code for number in range(10)]
    refused = log_in(api, "viewer", "203.0.113.10", password="pw-viewer-1")

    assert statuses == [400] * 10
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 60
    assert len(authentications) == 10  # the refused one was never checked
    assert log_in(api, "someone", "203.0.113.11").status_code == 400  # another address still may


def test_requests_refused_for_their_address_do_not_count_against_the_username(api, user):
    for number in range(10):
        log_in(api, f"guess{number}", "203.0.113.20")
    refused = [log_in(api, "viewer", "203.0.113.20").status_code for _ in range(10)]

    assert refused == [429] * 10
    assert log_in(api, "viewer", "203.0.113.21", password="pw-viewer-1").status_code == 200


def test_one_username_from_many_addresses_is_throttled(api, user, authentications):
    statuses = [log_in(api, "viewer", f"198.51.100.{number}").status_code for number in range(1, 11)]
    refused = log_in(api, "viewer", "198.51.100.99", password="pw-viewer-1")

    assert statuses == [400] * 10
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 60
    assert log_in(api, "VIEWER", "198.51.100.98").status_code == 429  # the same name, other case
    assert log_in(api, " viewer ", "198.51.100.96").status_code == 429  # the serializer strips spaces
    assert len(authentications) == 10
    assert log_in(api, "other-name", "198.51.100.97").status_code == 400


def test_forged_forwarded_for_does_not_reset_the_login_limit(api, user):
    statuses = [
        api.post(
            TOKEN_URL, {"username": f"guess{number}", "password": "x"}, HTTP_X_FORWARDED_FOR=f"192.0.2.{number}"
        ).status_code
        for number in range(11)
    ]

    assert statuses == [400] * 10 + [429]


def test_a_login_count_raced_past_the_limit_still_says_when_to_retry(api, user):
    """Concurrent requests can each read the count before the others write it, leaving
    more entries than the limit; DRF then has no estimate of the wait."""
    from django.core.cache import cache
    from django.utils import timezone

    cache.set("throttle_login_address_203.0.113.30", [timezone.now().timestamp()] * 12, 60)
    refused = log_in(api, "viewer", "203.0.113.30")

    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 60


def test_a_token_body_that_does_not_parse_is_a_400(api, user, caplog):
    response = api.post(TOKEN_URL, "{not json", content_type="application/json")

    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]
    assert "Rate limit cache unreachable" not in caplog.text


# --- health says only the status to anyone but staff -------------------------------------


@pytest.mark.parametrize("caller", ["anonymous", "user"])
def test_health_says_only_the_status_to_anyone_but_staff(api, user, settings, caller):
    settings.STORAGE_PROVIDERS = ["cloudinary", "s3", "local"]
    client = api if caller == "anonymous" else client_for(user)

    response = client.get("/api/health/")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_health_down_is_a_503_with_only_the_status(api, settings):
    from storage_backends.breaker import CircuitBreaker

    settings.STORAGE_BREAKER_FAILURES = 1
    CircuitBreaker("local").record_failure()

    response = api.get("/api/health/")

    assert (response.status_code, response.json()) == (503, {"status": "down"})


def test_staff_signed_in_by_session_get_the_providers(staff_user, settings):
    from django.test import Client

    settings.STORAGE_PROVIDERS = ["s3", "local"]
    client = Client()
    client.force_login(staff_user)

    shown = client.get("/api/health/").json()["providers"]

    assert [{key: provider[key] for key in ("name", "configured", "available")} for provider in shown] == [
        {"name": "s3", "configured": False, "available": False},
        {"name": "local", "configured": True, "available": True},
    ]
