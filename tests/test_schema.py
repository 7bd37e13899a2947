"""The OpenAPI schema says what the API answers, and the API refuses what the schema
forbids (schemathesis checks the whole of it in test_schema_conformance.py)."""

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import video_upload
from videos.models import Video

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    with django_db_blocker.unblock():
        return APIClient().get("/api/schema/?format=json").json()


def statuses(schema, path, method):
    return set(schema["paths"][path][method]["responses"])


@pytest.fixture
def owner(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def test_a_video_is_uploaded_only_as_multipart(schema):
    upload = schema["paths"]["/api/videos/"]["post"]["requestBody"]["content"]

    assert list(upload) == ["multipart/form-data"]
    change = schema["paths"]["/api/videos/{id}/"]["patch"]["requestBody"]["content"]
    assert "file" not in schema["components"]["schemas"]["PatchedVideoMetadataRequest"]["properties"]
    assert set(change) == {"multipart/form-data", "application/json"}


@pytest.mark.parametrize(
    "path, method, expected",
    [
        ("/api/videos/", "get", {"200", "400", "401", "404", "429"}),
        ("/api/videos/", "post", {"201", "400", "401", "403", "411", "413", "415", "429", "503"}),
        ("/api/videos/{id}/", "get", {"200", "401", "404", "429"}),
        ("/api/videos/{id}/", "delete", {"204", "401", "403", "404", "429"}),
        ("/api/uploads/", "post", {"201", "400", "401", "403", "411", "413", "415", "429", "503"}),
        ("/api/uploads/{id}/complete/", "post", {"200", "201", "202", "400", "404", "409", "410", "413", "503"}),
        ("/api/uploads/{id}/fail/", "post", {"200", "404", "409", "410", "503"}),
        ("/api/health/", "get", {"200", "401", "503"}),
    ],
)
def test_the_schema_documents_each_answer(schema, path, method, expected):
    assert expected <= statuses(schema, path, method)


def test_waits_and_refused_bodies_are_documented_as_they_are_sent(schema):
    upload = schema["paths"]["/api/videos/"]["post"]["responses"]

    assert "Retry-After" in upload["503"]["headers"] and "Retry-After" in upload["429"]["headers"]
    assert set(upload["413"]["content"]) == {"application/json", "text/plain"}
    assert upload["404" if "404" in upload else "400"]["content"]["application/json"]["examples"]
    health = schema["paths"]["/api/health/"]["get"]["responses"]["503"]
    assert "headers" not in health  # the health body, not a storage error


def test_local_disk_is_among_the_providers(schema):
    assert schema["components"]["schemas"]["StorageProviderEnum"]["enum"] == ["cloudinary", "s3", "local"]


@pytest.mark.parametrize("path", ["/api/videos/1.5/", "/api/uploads/%C2%84/", "/api/nothing/"])
def test_an_address_under_api_that_matches_no_route_is_a_json_404(path):
    response = APIClient().get(path)

    assert (response.status_code, response["Content-Type"]) == (404, "application/json")
    assert response.json() == {"detail": "Not found."}
    assert "text/html" in APIClient().get("/no-such-page/")["Content-Type"]


@pytest.mark.parametrize(
    "query, field, message",
    [
        ({"page_size": "abc"}, "page_size", "Enter a whole number of at least 1."),
        ({"page_size": "0"}, "page_size", "Enter a whole number of at least 1."),
        ({"search": "a\x00b"}, "search", "Null characters are not allowed."),
    ],
    ids=["page_size-abc", "page_size-0", "search-null"],
)
def test_bad_list_parameters_are_a_400_naming_the_parameter(query, field, message):
    response = APIClient().get("/api/videos/", query)

    assert (response.status_code, response.json()) == (400, {field: [message]})


def test_an_empty_filter_filters_nothing_as_the_schema_says(schema, user):
    Video.objects.create(title="Harbour", owner=user, file=video_upload(), is_published=True)
    parameters = schema["paths"]["/api/videos/"]["get"]["parameters"]

    empty = {parameter["name"]: "" for parameter in parameters if parameter.get("allowEmptyValue")}

    assert set(empty) == {"storage_provider", "is_published", "owner", "search", "ordering"}
    assert APIClient().get("/api/videos/", empty).json()["count"] == 1


def test_a_large_page_size_gives_the_largest_page():
    assert APIClient().get("/api/videos/", {"page_size": "1000"}).status_code == 200


@pytest.mark.parametrize(
    "body, field",
    [({"description": 0}, "description"), ({"is_published": 0}, "is_published"), ({"title": ["x"]}, "title")],
    ids=["number-as-text", "number-as-boolean", "list-as-text"],
)
def test_a_json_value_of_another_type_than_the_schemas_is_a_400(owner, user, body, field):
    video = Video.objects.create(title="Harbour", owner=user, file=video_upload())

    response = owner.patch(f"/api/videos/{video.pk}/", body, format="json")

    assert response.status_code == 400 and field in response.json()
    video.refresh_from_db()
    assert (video.title, video.description, video.is_published) == ("Harbour", "", False)


def test_a_form_still_sends_booleans_as_text(owner, user):
    video = Video.objects.create(title="Harbour", owner=user, file=video_upload())

    response = owner.patch(f"/api/videos/{video.pk}/", {"is_published": "true"}, format="multipart")

    assert response.status_code == 200 and response.json()["is_published"] is True


@pytest.mark.parametrize(
    "body",
    [{"filename": "a.mp4", "size": "10"}, {"filename": 5, "size": 10}],
    ids=["size-as-text", "filename-as-number"],
)
def test_a_direct_upload_takes_json_values_of_the_schemas_types(owner, settings, body):
    settings.STORAGE_PROVIDERS = ["local"]

    assert owner.post("/api/uploads/", body, format="json").status_code == 400


def test_a_direct_upload_takes_json_only(owner, settings):
    settings.STORAGE_PROVIDERS = ["local"]

    response = owner.post("/api/uploads/", {"filename": "a.mp4", "size": 10}, format="multipart")

    assert response.status_code == 415


def test_a_direct_upload_of_a_name_with_nothing_to_keep_is_named_video(owner, settings):
    settings.STORAGE_PROVIDERS = ["local"]

    response = owner.post("/api/uploads/", {"filename": "`.mkv", "size": 10}, format="json")

    assert (response.status_code, response.json()["filename"]) == (201, "video.mkv")
