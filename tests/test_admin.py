import pytest
from django.urls import reverse

from tests.factories import sha256, video_upload
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
    upload = video_upload("holiday.mp4", size=10_000)
    response = admin_client.post(
        reverse("admin:videos_video_add"),
        {
            "title": "Uploaded in the admin",
            "description": "",
            "owner": staff_user.pk,
            "is_published": "on",
            "file": upload,
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
    assert sha256((media_root / video.file.name.removeprefix("local:")).read_bytes()) == sha256(upload.body)


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


def test_changelist_shows_the_provider_as_a_badge(admin_client, videos):
    page = admin_client.get(reverse("admin:videos_video_changelist")).content.decode()

    assert page.count('class="provider-badge"') == 2
    assert ">Amazon S3</span>" in page and ">Local disk</span>" in page


def test_change_page_plays_the_video(admin_client, staff_user, media_root):
    video = Video.objects.create(title="Clip", owner=staff_user, file=video_upload(), is_published=True)

    page = admin_client.get(reverse("admin:videos_video_change", args=[video.pk])).content.decode()

    assert f'<video controls preload="metadata" width="480" src="/media/{video.file.name.removeprefix("local:")}">' in page


def admin_add(admin_client, staff_user, **fields):
    data = {"title": "Uploaded", "description": "", "owner": staff_user.pk, "file": video_upload()}
    data.update(fields)
    return admin_client.post(reverse("admin:videos_video_add"), data, follow=True)


def test_a_file_that_is_not_a_video_is_refused_in_the_form(admin_client, staff_user, media_root):
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = admin_add(admin_client, staff_user, file=SimpleUploadedFile("clip.mp4", b"plain text " * 40))

    assert response.context["adminform"].form.errors["file"] == ["The file is not a video: its content is unrecognised data."]
    assert not Video.objects.exists()
    assert not media_root.exists() or not any(media_root.rglob("*.mp4"))


def test_storage_down_is_a_readable_error_and_nothing_saved(admin_client, staff_user, settings, tmp_path):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    settings.MEDIA_ROOT = blocked

    response = admin_add(admin_client, staff_user)

    assert response.status_code == 200
    shown = [str(message) for message in response.context["messages"]]
    assert len(shown) == 1 and shown[0].startswith("The file could not be stored: every storage provider failed.")
    assert not Video.objects.exists()


def test_verify_files_reports_what_is_missing(admin_client, staff_user, media_root):
    present = Video.objects.create(title="Present", owner=staff_user, file=video_upload())
    gone = Video.objects.create(title="Gone", owner=staff_user, file=video_upload())
    (media_root / gone.file.name.removeprefix("local:")).unlink()

    response = admin_client.post(
        reverse("admin:videos_video_changelist"),
        {"action": "verify_files", "_selected_action": [present.pk, gone.pk]},
        follow=True,
    )

    shown = [str(message) for message in response.context["messages"]]
    assert shown == [f"Missing: Gone ({gone.file.name})"]


def test_move_action_moves_the_selected_videos(admin_client, staff_user, settings, s3_inprocess, media_root):
    settings.STORAGE_PROVIDERS = ["local"]
    video = Video.objects.create(title="Clip", owner=staff_user, file=video_upload())
    assert video.storage_provider == "local"

    response = admin_client.post(
        reverse("admin:videos_video_changelist"),
        {"action": "move_to_s3", "_selected_action": [video.pk]},
        follow=True,
    )

    assert [str(message) for message in response.context["messages"]] == ["Moved 1 video(s) to Amazon S3."]
    video.refresh_from_db()
    assert video.storage_provider == "s3"
    keys = [item["Key"] for item in s3_inprocess.list_objects_v2(Bucket="stremora-test")["Contents"]]
    assert keys == ["stremora/" + video.file.name.removeprefix("s3:")]


def test_an_oversized_upload_in_the_admin_is_a_413(admin_client, staff_user, settings, media_root):
    settings.MAX_UPLOAD_MB = 1

    response = admin_client.post(
        reverse("admin:videos_video_add"),
        {"title": "Too big", "owner": staff_user.pk, "file": video_upload(size=2 * 1024 * 1024)},
    )

    assert response.status_code == 413
    assert response.content.decode() == "The upload is larger than the limit of 1 MB."
    assert not Video.objects.exists()


def test_change_page_of_a_file_on_an_unconfigured_provider_still_renders(admin_client, videos):
    # videos[0] is on S3, which has no credentials here.
    response = admin_client.get(reverse("admin:videos_video_change", args=[videos[0].pk]))

    assert response.status_code == 200
    page = response.content.decode()
    assert "The s3 storage provider is not configured." in page
    assert "Harbour timelapse" in page


def test_moving_a_video_whose_file_is_gone_reports_it_and_moves_the_rest(
    admin_client, staff_user, settings, s3_inprocess, media_root
):
    settings.STORAGE_PROVIDERS = ["local"]
    gone = Video.objects.create(title="Gone", owner=staff_user, file=video_upload())
    kept = Video.objects.create(title="Kept", owner=staff_user, file=video_upload())
    (media_root / gone.file.name.removeprefix("local:")).unlink()

    response = admin_client.post(
        reverse("admin:videos_video_changelist"),
        {"action": "move_to_s3", "_selected_action": [gone.pk, kept.pk]},
        follow=True,
    )

    shown = [str(message) for message in response.context["messages"]]
    assert shown[0] == "Moved 1 video(s) to Amazon S3."
    assert shown[1].startswith("Gone: not moved to Amazon S3: FileNotFoundError")
    assert len(shown) == 2
    assert Video.objects.get(pk=kept.pk).storage_provider == "s3"
    assert Video.objects.get(pk=gone.pk).storage_provider == "local"


def test_the_upload_script_is_told_where_to_go_and_the_message_waits_for_that_page(
    admin_client, staff_user, media_root
):
    response = admin_client.post(
        reverse("admin:videos_video_add"),
        {"title": "Sent by the script", "owner": staff_user.pk, "file": video_upload()},
        headers={"X-Requested-With": "XMLHttpRequest"},
    )

    assert response.status_code == 200
    assert response.json() == {"location": reverse("admin:videos_video_changelist")}
    page = admin_client.get(response.json()["location"])
    video = Video.objects.get(title="Sent by the script")
    link = f'<a href="{reverse("admin:videos_video_change", args=[video.pk])}">{video}</a>'
    assert [str(message) for message in page.context["messages"]] == [f"The video “{link}” was added successfully."]


def test_the_add_form_shows_no_provider_or_size_before_a_file_is_stored(admin_client):
    page = admin_client.get(reverse("admin:videos_video_add")).content.decode()

    for field in ("storage_provider", "size_bytes", "size", "content_type", "duration_seconds", "duration"):
        assert f"field-{field}" not in page
    assert "Cloudinary" not in page
    assert "field-file" in page and "field-title" in page


def shown_read_only(response):
    """The change form's read-only rows as the editor reads them: ``{label: text}``."""
    return {
        field.label_tag(): str(field.contents())
        for fieldset in response.context["adminform"]
        for line in fieldset
        for field in line
        if field.is_readonly
    }


@pytest.mark.parametrize("seconds, duration", [(83.4, "1:23"), (3725.0, "1:02:05")])
def test_the_change_form_names_size_and_duration_plainly(admin_client, staff_user, media_root, seconds, duration):
    video = Video.objects.create(title="Clip", owner=staff_user, file=video_upload())
    Video.objects.filter(pk=video.pk).update(size_bytes=5 * 1024 * 1024, duration_seconds=seconds)

    shown = shown_read_only(admin_client.get(reverse("admin:videos_video_change", args=[video.pk])))

    assert shown["<label>Size:</label>"] == "5.0\xa0MB"
    assert shown["<label>Duration:</label>"] == duration
    assert not any("bytes" in label or "seconds" in label for label in shown)


def test_a_video_not_yet_measured_shows_no_duration(admin_client, staff_user, media_root):
    video = Video.objects.create(title="Clip", owner=staff_user, file=video_upload())

    shown = shown_read_only(admin_client.get(reverse("admin:videos_video_change", args=[video.pk])))

    assert shown["<label>Duration:</label>"] == "-"


def uploaded_directly(owner, body):
    """A direct upload of ``body`` by ``owner`` to local disk, its bytes all sent."""
    import io

    from videos import upload_sessions

    session = upload_sessions.start_upload(owner, filename="clip.mp4", size=len(body), content_type="video/mp4")
    upload_sessions.receive_chunk(session, start=0, end=len(body) - 1, total=len(body), stream=io.BytesIO(body))
    return session


def add_with_upload(admin_client, staff_user, session, **fields):
    data = {"title": "Sent directly", "description": "", "owner": staff_user.pk, "upload_session": session.pk}
    return admin_client.post(reverse("admin:videos_video_add"), {**data, **fields})


def test_the_add_form_saves_a_direct_upload_by_its_id(admin_client, staff_user, settings, media_root):
    settings.STORAGE_PROVIDERS = ["local"]
    body = video_upload(size=50_000).body
    session = uploaded_directly(staff_user, body)

    response = add_with_upload(admin_client, staff_user, session, upload_report="{}")

    assert response.status_code == 302, response.context["adminform"].form.errors
    video = Video.objects.get(title="Sent directly")
    assert video.storage_provider == "local" and video.size_bytes == len(body) and video.content_type == "video/mp4"
    assert sha256((media_root / video.file.name.removeprefix("local:")).read_bytes()) == sha256(body)
    session.refresh_from_db()
    assert session.status == "completed" and session.video == video


def test_a_direct_upload_that_fails_its_check_is_a_form_error_and_saves_nothing(
    admin_client, staff_user, settings, media_root
):
    settings.STORAGE_PROVIDERS = ["local"]
    session = uploaded_directly(staff_user, b"plain text, not a video " * 100)

    response = add_with_upload(admin_client, staff_user, session, description="Kept")

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.errors["file"] == [
        "The file is not a video: its content is unrecognised data. It was removed. Choose the file again."
    ]
    assert form["description"].value() == "Kept" and not form["upload_session"].value()
    assert not Video.objects.exists()
    session.refresh_from_db()
    assert session.status == "abandoned"
    assert not any(path.is_file() for path in media_root.rglob("*"))


def test_another_editors_direct_upload_cannot_be_taken(admin_client, staff_user, user, settings, media_root):
    settings.STORAGE_PROVIDERS = ["local"]
    session = uploaded_directly(user, video_upload().body)

    response = add_with_upload(admin_client, staff_user, session)

    assert response.context["adminform"].form.errors["file"] == [
        "No such upload of yours: choose the file again."
    ]
    assert not Video.objects.exists()
