"""Local-disk files of unpublished videos: only through signed URLs that expire."""

import html
import re
import secrets
import socket
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from storage_backends import providers
from tests.factories import video_upload
from videos import services
from videos.models import Video

pytestmark = pytest.mark.django_db

URL_EXPIRY = 600
# The smallest PNG: one transparent pixel.
PNG_PIXEL = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d4944415478da63fcff1f0003030200efa2a7c30000000049454e44ae426082"
)


@pytest.fixture(autouse=True)
def local_storage(settings):
    settings.STORAGE_PROVIDERS = ["local"]
    settings.AWS_S3_URL_EXPIRY = URL_EXPIRY


def make_video(owner, *, is_published):
    return Video.objects.create(
        title="Clip",
        owner=owner,
        file=video_upload(),
        thumbnail=ContentFile(PNG_PIXEL, name="poster.png"),
        is_published=is_published,
    )


def plain_url(field_file):
    return field_file.url


def body(response):
    return b"".join(response.streaming_content)


def expiry_of(url):
    return int(parse_qs(urlsplit(url).query)["expires"][0])


def with_query(url, **changes):
    path, query = url.split("?")
    params = {key: values[0] for key, values in parse_qs(query).items()}
    params.update(changes)
    return path + "?" + "&".join(f"{key}={value}" for key, value in params.items())


def test_files_of_a_published_video_have_plain_urls_that_anyone_gets(client, user):
    video = make_video(user, is_published=True)

    page = client.get(f"/videos/{video.pk}/").content.decode()

    assert f'<source src="{plain_url(video.file)}"' in page and f'poster="{plain_url(video.thumbnail)}"' in page
    for field_file in (video.file, video.thumbnail):
        response = client.get(plain_url(field_file))
        assert response.status_code == 200 and response["Cache-Control"] == "no-cache"
        assert body(response) == field_file.storage.open(field_file.name).read()


def test_files_of_an_unpublished_video_are_a_404_at_their_plain_url(client, admin_client, user):
    video = make_video(user, is_published=False)

    for field_file in (video.file, video.thumbnail):
        assert client.get(plain_url(field_file)).status_code == 404
        assert admin_client.get(plain_url(field_file)).status_code == 404  # a session is no signature


def test_unpublishing_a_video_stops_its_plain_urls(client, user):
    video = make_video(user, is_published=True)
    urls = [plain_url(video.file), plain_url(video.thumbnail)]
    assert [client.get(url).status_code for url in urls] == [200, 200]

    services.update_video(video, is_published=False)

    assert [client.get(url).status_code for url in urls] == [404, 404]


def test_files_whose_video_is_gone_or_that_no_video_uses_are_a_404(client, user):
    video = make_video(user, is_published=True)
    url = plain_url(video.file)
    stray = default_storage.save("videos/stray.mp4", video_upload())
    assert default_storage.exists(stray)

    services.delete_video(video)

    assert client.get(url).status_code == 404
    assert client.get(default_storage.url(stray)).status_code == 404


def test_the_owner_s_watch_page_plays_an_unpublished_video_through_signed_urls(client, user):
    video = make_video(user, is_published=False)
    client.force_login(user)

    page = client.get(f"/videos/{video.pk}/").content.decode()

    source = html.unescape(re.search(r'<source src="([^"]+)"', page).group(1))
    poster = html.unescape(re.search(r'poster="([^"]+)"', page).group(1))
    client.logout()  # whoever holds the signed URL may play it, as with S3's presigned ones
    for url, field_file in ((source, video.file), (poster, video.thumbnail)):
        assert url.startswith(plain_url(field_file) + "?")
        response = client.get(url)
        assert response.status_code == 200
        assert body(response) == field_file.storage.open(field_file.name).read()
        assert response["Cache-Control"].startswith("private, max-age=")
    ranged = client.get(source, headers={"Range": "bytes=0-9"})
    assert (ranged.status_code, ranged["Content-Range"]) == (206, "bytes 0-9/4096")


def test_the_api_gives_owners_and_staff_signed_urls(user, staff_user):
    video = make_video(user, is_published=False)

    for viewer in (user, staff_user):
        api = APIClient()
        api.force_authenticate(viewer)
        answer = api.get(f"/api/videos/{video.pk}/").json()
        for key, field_file in (("video_url", video.file), ("thumbnail_url", video.thumbnail)):
            url = answer[key]
            assert url.startswith("http://testserver" + plain_url(field_file) + "?expires=")
            assert APIClient().get(url.removeprefix("http://testserver")).status_code == 200
    assert APIClient().get(f"/api/videos/{video.pk}/").status_code == 404


def test_the_admin_plays_and_links_an_unpublished_video_through_signed_urls(admin_client, client, staff_user):
    video = make_video(staff_user, is_published=False)

    page = admin_client.get(reverse("admin:videos_video_change", args=[video.pk])).content.decode()

    player = html.unescape(re.search(r'<video controls preload="metadata" width="480" src="([^"]+)"', page).group(1))
    links = [html.unescape(href) for href in re.findall(r'Currently: <a href="([^"]+)"', page)]
    assert len(links) == 2  # the file and the thumbnail
    for url in (player, *links):
        assert "?expires=" in url
        assert client.get(url).status_code == 200


def test_a_signed_url_expires_after_the_configured_time(client, user):
    video = make_video(user, is_published=False)
    before = int(time.time())

    url = services.file_url(video.file)

    assert before + URL_EXPIRY <= expiry_of(url) <= int(time.time()) + URL_EXPIRY
    expired = default_storage.signed_url(video.file.name, expire=-5)
    response = client.get(expired)
    assert response.status_code == 403
    assert response.content.decode() == "This link has expired: reload the page for a new one."


def test_a_signed_url_cannot_be_changed_or_used_for_another_file(client, user):
    video = make_video(user, is_published=False)
    other = make_video(user, is_published=False)
    url = services.file_url(video.file)
    assert client.get(url).status_code == 200

    later = with_query(url, expires=expiry_of(url) + 3600)
    another_file = plain_url(other.file) + "?" + url.split("?")[1]
    the_poster = plain_url(video.thumbnail) + "?" + url.split("?")[1]
    signature = parse_qs(urlsplit(url).query)["signature"][0]
    altered = with_query(url, signature=("A" if signature[0] != "A" else "B") + signature[1:])
    for forged in (later, another_file, the_poster, altered, plain_url(video.file) + "?expires=" + str(expiry_of(url))):
        assert client.get(forged).status_code == 404, forged


def test_a_signed_url_stays_inside_media_root(client, media_root):
    (media_root.parent / "secret.txt").write_text("not media")
    signed = providers.get_storage("local").signed_url("../secret.txt")

    assert client.get(signed).status_code == 404


def test_a_file_name_with_a_null_byte_is_a_400(client):
    response = client.get("/media/a%00b")

    assert response.status_code == 400
    assert response.content.decode() == "A file name cannot contain a null character."


@pytest.mark.parametrize("signed", [False, True], ids=["plain", "signed"])
def test_a_file_name_too_long_for_the_disk_is_a_404(client, media_root, signed):
    media_root.mkdir(parents=True)  # else the missing folder answers first
    name = "a" * 300 + ".mp4"
    url = providers.get_storage("local").signed_url(name) if signed else f"/media/{name}"

    assert client.get(url).status_code == 404


@pytest.mark.django_db(transaction=True)
def test_gunicorn_answers_a_null_byte_or_an_overlong_name_with_a_4xx(user, media_root):
    from tests.stack import GunicornServer, site_environment

    video = make_video(user, is_published=True)
    environment = site_environment(secret_key=secrets.token_urlsafe(50), media_root=media_root)
    with GunicornServer(environment, workers=1) as site:

        def status_of(path):
            with socket.create_connection(("127.0.0.1", site.port), timeout=10) as connection:
                connection.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
                return int(connection.recv(64).split(b" ")[1])

        assert status_of(plain_url(video.file)) == 200
        assert status_of("/media/a%00b") == 400
        assert status_of("/media/" + "a" * 300) == 404
        assert status_of("/media/..%2F..%2Fetc%2Fpasswd") == 404
        assert "Internal Server Error" not in site.log()


def test_a_plain_request_costs_one_indexed_query(client, user, database_vendor):
    video = make_video(user, is_published=True)
    for field_file in (video.file, video.thumbnail):
        with CaptureQueriesContext(connection) as queries:
            assert client.get(plain_url(field_file)).status_code == 200
        assert len(queries) == 1

    if database_vendor == "postgresql":
        # Enough published videos that a scan of them would show in the plan.
        Video.objects.bulk_create(
            Video(
                title="Bulk",
                owner=user,
                file=f"local:videos/bulk/{n}.mp4",
                thumbnail=f"local:thumbnails/bulk/{n}.png",
                is_published=True,
            )
            for n in range(3000)
        )
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE videos_video")
            cursor.execute("EXPLAIN " + queries[0]["sql"])
            plan = "\n".join(row[0] for row in cursor.fetchall())
        assert "video_file" in plan and "video_thumbnail" in plan and "Seq Scan" not in plan, plan


def test_an_unpublished_video_on_s3_keeps_its_presigned_url(settings, user, s3_inprocess):
    settings.STORAGE_PROVIDERS = ["s3"]
    video = Video.objects.create(title="Clip", owner=user, file=video_upload())

    url = services.file_url(video.file)

    assert video.storage_provider == "s3"
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=600" in url
