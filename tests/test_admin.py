import pytest
from django.urls import reverse

from tests.factories import video_upload
from videos.models import Video


@pytest.fixture
def admin_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def videos(staff_user):
    return [
        Video.objects.create(
            title="Harbour timelapse",
            description="Boats at dawn",
            owner=staff_user,
            file="s3:videos/2026/11/harbour_k2P9xQa.mp4",
            size_bytes=5 * 1024 * 1024,
            is_published=True,
        ),
        Video.objects.create(
            title="Kitchen tour",
            description="A walk through the new kitchen",
            owner=staff_user,
            file="local:videos/2026/11/kitchen_Xc81LmQ.mp4",
        ),
    ]


def test_changelist_shows_the_columns_and_filters(admin_client, videos):
    response = admin_client.get(reverse("admin:videos_video_changelist"))

    assert response.status_code == 200
    page = response.content.decode()
    for header in ("Title", "Owner", "Storage provider", "Size", "Is published", "Created at"):
        assert header in page
    assert "Harbour timelapse" in page and "Kitchen tour" in page
    assert "5.0\xa0MB" in page
    assert "By storage provider" in page and "By is published" in page


def test_changelist_filters_by_provider_and_publication(admin_client, videos):
    url = reverse("admin:videos_video_changelist")

    on_s3 = admin_client.get(url, {"storage_provider__exact": "s3"})
    unpublished = admin_client.get(url, {"is_published__exact": "0"})

    assert list(on_s3.context["cl"].result_list) == [videos[0]]
    assert list(unpublished.context["cl"].result_list) == [videos[1]]


def test_changelist_searches_title_and_description(admin_client, videos):
    url = reverse("admin:videos_video_changelist")

    assert list(admin_client.get(url, {"q": "dawn"}).context["cl"].result_list) == [videos[0]]
    assert list(admin_client.get(url, {"q": "kitchen"}).context["cl"].result_list) == [videos[1]]


def test_add_page_renders_with_the_editor_as_owner(admin_client, staff_user):
    response = admin_client.get(reverse("admin:videos_video_add"))

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.initial["owner"] == staff_user.pk
    assert "storage_provider" not in form.fields  # read-only, shown but not editable


def test_add_through_the_admin_records_the_file(admin_client, staff_user, media_root):
    response = admin_client.post(
        reverse("admin:videos_video_add"),
        {
            "title": "Uploaded in the admin",
            "description": "",
            "owner": staff_user.pk,
            "is_published": "on",
            "file": video_upload("holiday.mp4", size=10_000),
            "storage_provider": "s3",  # read-only: ignored
        },
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    video = Video.objects.get(title="Uploaded in the admin")
    assert video.owner == staff_user
    assert video.is_published is True
    # No provider credentials in the test settings: the chain is local disk alone.
    assert video.storage_provider == "local"
    assert video.file.name.startswith("local:videos/")
    assert video.size_bytes == 10_000
    assert video.content_type == "video/mp4"
    assert (media_root / video.file.name.removeprefix("local:")).stat().st_size == 10_000


def test_change_page_renders(admin_client, videos, settings):
    settings.AWS_ACCESS_KEY_ID = "AKIAEXAMPLE"
    settings.AWS_SECRET_ACCESS_KEY = "secret"
    settings.AWS_S3_BUCKET_NAME = "videos"

    response = admin_client.get(reverse("admin:videos_video_change", args=[videos[0].pk]))

    assert response.status_code == 200
    assert "Harbour timelapse" in response.content.decode()


def test_admin_requires_staff(client, user):
    client.force_login(user)
    response = client.get(reverse("admin:videos_video_changelist"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))
