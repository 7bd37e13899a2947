"""The public pages and local-disk files served with byte ranges."""

import pytest

from tests.factories import video_upload
from videos import services
from videos.models import Video


@pytest.fixture(autouse=True)
def local_storage(settings):
    settings.STORAGE_PROVIDERS = ["local"]


def test_the_list_shows_published_videos_only(client, user):
    Video.objects.create(title="Harbour", owner=user, file=video_upload(), is_published=True)
    Video.objects.create(title="Draft cut", owner=user, file=video_upload())

    page = client.get("/").content.decode()

    assert "Harbour" in page and "Draft cut" not in page


def test_the_watch_page_plays_the_video(client, user):
    video = services.create_video(title="Harbour", owner=user, file=video_upload(), is_published=True)

    page = client.get(f"/videos/{video.pk}/").content.decode()

    assert f'<source src="{video.file.url}" type="video/mp4">' in page


def test_an_unpublished_video_is_a_404_except_to_its_owner(client, user, django_user_model):
    video = Video.objects.create(title="Draft", owner=user, file=video_upload())

    assert client.get(f"/videos/{video.pk}/").status_code == 404
    client.force_login(django_user_model.objects.create_user("someone", password="pw-someone-1"))
    assert client.get(f"/videos/{video.pk}/").status_code == 404
    client.force_login(user)
    assert client.get(f"/videos/{video.pk}/").status_code == 200


def test_titles_are_escaped(client, user):
    Video.objects.create(title="<script>alert(1)</script>", owner=user, file=video_upload(), is_published=True)

    page = client.get("/").content.decode()

    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page


def body(response):
    return b"".join(response.streaming_content)


def test_local_files_are_served_whole_and_by_range(client, user):
    upload = video_upload(size=1000)
    video = Video.objects.create(title="Clip", owner=user, file=upload, is_published=True)
    url = video.file.url
    content = upload.body

    whole = client.get(url)
    assert (whole.status_code, whole["Accept-Ranges"], whole["Content-Type"]) == (200, "bytes", "video/mp4")
    assert body(whole) == content

    middle = client.get(url, headers={"Range": "bytes=100-199"})
    assert (middle.status_code, middle["Content-Range"], middle["Content-Length"]) == (206, "bytes 100-199/1000", "100")
    assert body(middle) == content[100:200]

    tail = client.get(url, headers={"Range": "bytes=-10"})
    assert (tail["Content-Range"], body(tail)) == ("bytes 990-999/1000", content[-10:])

    open_ended = client.get(url, headers={"Range": "bytes=990-"})
    assert body(open_ended) == content[990:]

    beyond = client.get(url, headers={"Range": "bytes=5000-"})
    assert (beyond.status_code, beyond["Content-Range"]) == (416, "bytes */1000")


@pytest.mark.parametrize("path", ["../settings.py", "..%2F..%2Fetc%2Fpasswd", "videos/missing.mp4", "videos/"])
def test_media_outside_or_missing_is_a_404(client, db, path):
    assert client.get(f"/media/{path}").status_code == 404
