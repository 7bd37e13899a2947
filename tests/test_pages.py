"""The public pages and local-disk files served with byte ranges."""

import io
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

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


def publish(owner, title, description="", **fields):
    return Video.objects.create(
        title=title, description=description, owner=owner, file=video_upload(), is_published=True, **fields
    )


def titles_on(page):
    return re.findall(r"<h2>(.*?)</h2>", page)


def test_the_search_box_finds_titles_and_descriptions_as_the_api_does(client, user):
    publish(user, "Harbour at dawn", "boats leaving")
    publish(user, "Kitchen tour", "a harbour view from the window")
    publish(user, "Alpine pass")
    Video.objects.create(title="Harbour draft", owner=user, file=video_upload())

    page = client.get("/", {"search": "harbour"}).content.decode()

    assert sorted(titles_on(page)) == ["Harbour at dawn", "Kitchen tour"]
    assert '<input type="search" name="search" value="harbour"' in page
    api = client.get("/api/videos/", {"search": "harbour"}).json()
    assert sorted(video["title"] for video in api["results"]) == sorted(titles_on(page))
    assert "No published video matches “nothing”" in client.get("/", {"search": "nothing"}).content.decode()


def test_a_search_the_api_refuses_is_a_message_not_an_error(client, user):
    publish(user, "Harbour")

    response = client.get("/", {"search": " ".join(["word"] * 11)})

    assert response.status_code == 200
    page = response.content.decode()
    assert "Search for at most 10 words at a time." in page and titles_on(page) == []


def test_the_pages_of_a_search_keep_the_search(client, user):
    for number in range(25):
        publish(user, f"Harbour {number}")

    page = client.get("/", {"search": "harbour"}).content.decode()

    assert 'href="?page=2&amp;search=harbour"' in page


def test_every_page_names_its_icon_and_favicon_ico_leads_there(client, user):
    video = publish(user, "Harbour")

    for path in ("/", f"/videos/{video.pk}/"):
        assert '<link rel="icon" href="/static/videos/favicon.svg" type="image/svg+xml">' in client.get(path).content.decode()
    response = client.get("/favicon.ico")
    assert (response.status_code, response["Location"]) == (301, "/static/videos/favicon.svg")


def test_the_watch_page_shows_the_duration_and_the_poster(client, user):
    picture = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(picture, "PNG")
    video = services.create_video(
        owner=user, title="Harbour", file=video_upload(), thumbnail=SimpleUploadedFile("poster.png", picture.getvalue()),
        is_published=True,
    )
    Video.objects.filter(pk=video.pk).update(duration_seconds=3723.4)

    page = client.get(f"/videos/{video.pk}/").content.decode()

    assert '<time class="duration" datetime="PT1H2M3S">1:02:03</time>' in page
    poster = services.poster_url(video)
    assert poster and f'poster="{poster}"' in page


@pytest.mark.parametrize("seconds, shown", [(4.2, "0:04"), (65, "1:05"), (599.6, "10:00"), (3600, "1:00:00")])
def test_durations_read_as_players_show_them(seconds, shown):
    from videos.templatetags.durations import duration

    assert duration(seconds) == shown
