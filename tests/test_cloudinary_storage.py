"""The Cloudinary provider through the real SDK, against the Cloudinary test server."""

import io
import json
import urllib.request

import pytest
from cloudinary import api as cloudinary_api
from cloudinary import exceptions as cloudinary_exceptions
from django.core.files.base import ContentFile, File

from storage_backends import providers
from storage_backends.cloudinary import CloudinaryStorage
from storage_backends.errors import ProviderAnswerError


@pytest.fixture
def storage(cloudinary_server):
    return providers.get_storage("cloudinary")


def account(server):
    return {
        "cloud_name": server.cloud_name,
        "api_key": server.api_key,
        "api_secret": server.api_secret,
        "upload_prefix": server.url,
    }


def test_save_uploads_a_video_resource_under_the_project_folder(storage, cloudinary_server):
    name = storage.save("videos/2026/11/clip.mp4", ContentFile(b"video bytes", name="clip.mp4"))

    assert name.startswith("videos/2026/11/clip_") and name.endswith(".mp4")
    public_id = "stremora/" + name.removesuffix(".mp4")
    assert list(cloudinary_server.resources()) == [("video", public_id)]
    assert cloudinary_server.content(public_id, "video") == b"video bytes"
    assert cloudinary_server.requests["upload"] == 1


def test_images_are_image_resources_and_other_files_raw(storage, cloudinary_server):
    storage.save("thumbnails/poster.jpg", ContentFile(b"jpeg bytes"))
    storage.save("notes/readme.txt", ContentFile(b"text"))

    kinds = {(kind, public_id.rsplit("/", 1)[0]) for kind, public_id in cloudinary_server.resources()}
    assert kinds == {("image", "stremora/thumbnails"), ("raw", "stremora/notes")}
    raw_id = next(public_id for kind, public_id in cloudinary_server.resources() if kind == "raw")
    assert raw_id.endswith(".txt")


def test_exists_size_open_url_and_delete(storage, cloudinary_server):
    name = storage.save("videos/clip.mp4", ContentFile(b"x" * 3000))

    assert storage.exists(name)
    assert storage.size(name) == 3000
    url = storage.url(name)
    assert url.startswith(f"{cloudinary_server.url}/{cloudinary_server.cloud_name}/video/upload/")
    with urllib.request.urlopen(url) as response:
        assert response.read() == b"x" * 3000
    with storage.open(name) as stored:
        assert stored.read() == b"x" * 3000

    storage.delete(name)
    assert not storage.exists(name)
    assert cloudinary_server.resources() == {}
    storage.delete(name)  # already gone: not an error
    with pytest.raises(FileNotFoundError):
        storage.size(name)
    with pytest.raises(FileNotFoundError):
        storage.open(name)


def test_url_is_built_without_a_request(storage, cloudinary_server):
    storage.url("videos/clip.mp4")

    assert sum(cloudinary_server.requests.values()) == 0


def test_default_delivery_is_cloudinarys_cdn():
    storage = CloudinaryStorage("demo", "key", "secret", delivery_prefix="https://res.cloudinary.com")

    assert storage.url("videos/clip.mp4") == "https://res.cloudinary.com/demo/video/upload/v1/stremora/videos/clip.mp4"


def test_large_files_are_sent_in_chunks_under_one_name(cloudinary_server):
    storage = CloudinaryStorage(**account(cloudinary_server), chunk_size=64 * 1024, timeout=5)
    body = bytes(range(256)) * 1000  # 256,000 bytes: four chunks

    name = storage.save("videos/big.mp4", ContentFile(body))

    assert cloudinary_server.requests["upload"] == 4
    public_id = storage.resource_of(name)[0]
    assert cloudinary_server.content(public_id, "video") == body
    assert storage.size(name) == len(body)


def test_a_chunked_upload_that_fails_midway_stores_nothing(cloudinary_server):
    storage = CloudinaryStorage(**account(cloudinary_server), chunk_size=64 * 1024, timeout=5)
    cloudinary_server.fail("http_500", actions=["upload"], skip=2, times=1)

    with pytest.raises(cloudinary_exceptions.GeneralError):
        storage.save("videos/big.mp4", ContentFile(b"v" * 256_000))

    assert cloudinary_server.resources() == {}


def test_a_taken_public_id_is_never_overwritten(storage, cloudinary_server):
    first = storage._save("videos/clip.mp4", ContentFile(b"first"))
    second = storage._save("videos/clip.mp4", ContentFile(b"second"))

    assert first == "videos/clip.mp4"
    assert second != first and second.startswith("videos/clip_")
    assert storage.open(first).read() == b"first"
    assert storage.open(second).read() == b"second"


def test_the_stream_stays_open_for_the_next_provider(cloudinary_server):
    storage = CloudinaryStorage(**account(cloudinary_server), chunk_size=1024, timeout=5)
    content = File(io.BytesIO(b"z" * 5000), name="clip.mp4")

    storage.save("videos/clip.mp4", content)

    assert not content.closed
    content.seek(0)
    assert content.read() == b"z" * 5000


def test_a_wrong_secret_is_refused(cloudinary_server):
    storage = CloudinaryStorage(**{**account(cloudinary_server), "api_secret": "wrong"}, timeout=5)

    with pytest.raises(cloudinary_exceptions.AuthorizationRequired):
        storage.save("videos/clip.mp4", ContentFile(b"data"))
    with pytest.raises(cloudinary_exceptions.AuthorizationRequired):
        storage.exists("videos/clip.mp4")
    assert cloudinary_server.resources() == {}


def test_an_answer_without_the_file_is_an_error_and_is_cleaned_up(storage, cloudinary_server):
    cloudinary_server.fail("wrong_answer", actions=["upload"])

    with pytest.raises(ProviderAnswerError):
        storage.save("videos/clip.mp4", ContentFile(b"data"))

    assert cloudinary_server.requests["destroy"] == 1
    assert cloudinary_server.resources() == {}


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("http_500", cloudinary_exceptions.GeneralError),
        ("http_401", cloudinary_exceptions.AuthorizationRequired),
        ("rate_limit", cloudinary_exceptions.RateLimited),
        ("malformed_json", cloudinary_exceptions.Error),
        ("http_502", cloudinary_exceptions.Error),
        ("drop", cloudinary_exceptions.Error),
        ("hang", cloudinary_exceptions.Error),
        ("refuse", cloudinary_exceptions.Error),
    ],
)
def test_each_fault_reaches_the_sdk_as_an_error(storage, cloudinary_server, fault, error):
    cloudinary_server.fail(fault)

    with pytest.raises(error):
        storage.save("videos/clip.mp4", ContentFile(b"data"))

    cloudinary_server.heal()
    assert cloudinary_server.resources() == {}
    assert storage.save("videos/clip.mp4", ContentFile(b"data")).startswith("videos/clip_")


def test_the_admin_listing_pages_with_cursors(cloudinary_server):
    for number in range(25):
        cloudinary_server.put(f"stremora/videos/clip{number:02}", b"v", "video")
    cloudinary_server.put("elsewhere/clip", b"v", "video")

    pages, cursor = [], None
    while True:
        options = {"next_cursor": cursor} if cursor else {}
        page = cloudinary_api.resources(
            resource_type="video", type="upload", prefix="stremora/", max_results=10,
            **account(cloudinary_server), **options,
        )
        pages.append([resource["public_id"] for resource in page["resources"]])
        cursor = page.get("next_cursor")
        if not cursor:
            break

    assert [len(page) for page in pages] == [10, 10, 5]
    assert sorted(sum(pages, [])) == [f"stremora/videos/clip{number:02}" for number in range(25)]


def test_ping_and_resource_lookup(cloudinary_server):
    cloudinary_server.put("stremora/videos/clip", b"12345", "video")

    assert cloudinary_api.ping(**account(cloudinary_server))["status"] == "ok"
    resource = cloudinary_api.resource("stremora/videos/clip", resource_type="video", **account(cloudinary_server))
    assert resource["bytes"] == 5 and resource["format"] == "mp4"
    with pytest.raises(cloudinary_exceptions.NotFound):
        cloudinary_api.resource("stremora/videos/none", resource_type="video", **account(cloudinary_server))


def test_delivery_serves_byte_ranges(cloudinary_server):
    cloudinary_server.put("stremora/videos/clip", b"0123456789", "video")
    url = f"{cloudinary_server.url}/{cloudinary_server.cloud_name}/video/upload/v1/stremora/videos/clip.mp4"

    request = urllib.request.Request(url, headers={"Range": "bytes=2-5"})
    with urllib.request.urlopen(request) as response:
        assert response.status == 206
        assert response.headers["Content-Range"] == "bytes 2-5/10"
        assert response.read() == b"2345"


def test_faults_can_be_set_over_http(cloudinary_server):
    def post(path, body=None):
        request = urllib.request.Request(
            cloudinary_server.url + path, data=json.dumps(body or {}).encode(), method="POST"
        )
        with urllib.request.urlopen(request) as response:
            return json.load(response)

    assert post("/_control/fail", {"fault": "rate_limit", "times": 1}) == {"ok": True}
    with pytest.raises(cloudinary_exceptions.RateLimited):
        cloudinary_api.ping(**account(cloudinary_server))
    assert cloudinary_api.ping(**account(cloudinary_server))["status"] == "ok"
    assert post("/_control/reset") == {"ok": True}
    assert cloudinary_server.faults_served == 0
