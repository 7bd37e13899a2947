"""Bad uploads: each gets a clear 4xx and leaves the database and every provider as they were.

All three providers are live here (the Cloudinary test server, moto's S3 and local disk),
so "nothing stored" is checked everywhere a file could have landed.
"""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import MP4_HEADER, video_upload
from videos.models import PendingDeletion, Video

LIST_URL = "/api/videos/"


def png_bytes():
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 10, 10)).save(buffer, "PNG")
    return buffer.getvalue()


def upload(name, body, content_type="application/octet-stream"):
    return SimpleUploadedFile(name, body, content_type=content_type)


@pytest.fixture
def everywhere(settings, cloudinary_server, s3_inprocess, media_root):
    """All providers in the chain; returns a function that lists whatever each one holds."""
    settings.STORAGE_PROVIDERS = ["cloudinary", "s3", "local"]

    def stored():
        bucket = s3_inprocess.list_objects_v2(Bucket="stremora-test").get("Contents", [])
        disk = [path for path in media_root.rglob("*") if path.is_file()] if media_root.exists() else []
        return {
            "rows": Video.objects.count(),
            "queued": PendingDeletion.objects.count(),
            "cloudinary": sorted(cloudinary_server.resources()),
            "cloudinary_uploads": cloudinary_server.requests["upload"],
            "s3": [item["Key"] for item in bucket],
            "local": disk,
        }

    return stored


@pytest.fixture
def client(user):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return api


def good_fields(**overrides):
    fields = {"title": "Harbour", "file": video_upload()}
    fields.update(overrides)
    return {key: value for key, value in fields.items() if value is not None}


BAD_UPLOADS = [
    ("missing title", good_fields(title=None), "title", "This field is required."),
    ("blank title", good_fields(title=""), "title", "This field may not be blank."),
    ("title too long", good_fields(title="t" * 201), "title", "Ensure this field has no more than 200 characters."),
    ("missing file", good_fields(file=None), "file", "No file was submitted."),
    ("empty file", good_fields(file=upload("clip.mp4", b"")), "file", "The submitted file is empty."),
    ("text named .mp4", good_fields(file=upload("clip.mp4", b"just some text\n" * 50)), "file",
     "The file is not a video: its content is unrecognised data."),
    ("png named .mp4", good_fields(file=upload("clip.mp4", png_bytes())), "file",
     "The file is not a video: its content is image/png."),
    ("mp3 named .mp4", good_fields(file=upload("song.mp4", b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"\0" * 400)),
     "file", "The file is not a video: its content is audio/mpeg."),
    ("wav named .mov", good_fields(file=upload("sound.mov", b"RIFF\x00\x00\x00\x00WAVEfmt " + b"\0" * 400)),
     "file", "The file is not a video: its content is audio/x-wav."),
    ("script named .webm", good_fields(file=upload("x.webm", b"<script>alert(1)</script>" * 20)), "file",
     "The file is not a video: its content is unrecognised data."),
    ("mp4 content named .txt", good_fields(file=upload("clip.txt", MP4_HEADER + b"\0" * 100)), "file",
     "Files of type .txt are not accepted; upload one of: mp4, m4v, mov, webm, mkv, avi, mpeg, mpg, ogv."),
    ("mp4 content named .exe", good_fields(file=upload("setup.mp4.exe", MP4_HEADER + b"\0" * 100)), "file",
     "Files of type .exe are not accepted; upload one of: mp4, m4v, mov, webm, mkv, avi, mpeg, mpg, ogv."),
    ("no extension", good_fields(file=upload("clip", MP4_HEADER + b"\0" * 100)), "file",
     "Files of type (none) are not accepted; upload one of: mp4, m4v, mov, webm, mkv, avi, mpeg, mpg, ogv."),
    ("file sent as text", good_fields(file="not a file"), "file",
     "The submitted data was not a file. Check the encoding type on the form."),
    ("thumbnail not an image", good_fields(thumbnail=upload("thumb.jpg", b"not an image at all")), "thumbnail",
     "Upload a valid image. The file you uploaded was either not an image or a corrupted image."),
    ("thumbnail is a video", good_fields(thumbnail=video_upload("thumb.png")), "thumbnail",
     "Upload a valid image. The file you uploaded was either not an image or a corrupted image."),
    ("empty thumbnail", good_fields(thumbnail=upload("thumb.png", b"")), "thumbnail",
     "The submitted file is empty."),
    ("is_published not a boolean", good_fields(is_published="perhaps"), "is_published", "Must be a valid boolean."),
    ("title with a NUL byte", good_fields(title="bad\x00title"), "title", "Null characters are not allowed."),
]


@pytest.mark.parametrize(("case", "fields", "field", "message"), BAD_UPLOADS, ids=[case[0] for case in BAD_UPLOADS])
def test_bad_uploads_are_refused_and_store_nothing(client, everywhere, case, fields, field, message):
    before = everywhere()

    response = client.post(LIST_URL, fields, format="multipart")

    assert response.status_code == 400, response.content
    assert response.json()[field] == [message]
    assert everywhere() == before


def test_a_file_over_the_limit_is_a_413(client, everywhere, settings):
    settings.MAX_UPLOAD_MB = 1
    before = everywhere()

    response = client.post(LIST_URL, good_fields(file=video_upload(size=1024 * 1024 + 1)), format="multipart")

    assert response.status_code == 413
    assert response.json() == {"detail": "The upload is larger than the limit of 1 MB."}
    assert everywhere() == before


def test_a_body_announced_over_the_limit_is_refused_before_it_is_read(client, everywhere, settings):
    settings.MAX_UPLOAD_MB = 1
    before = everywhere()

    response = client.post(
        LIST_URL, good_fields(), format="multipart", CONTENT_LENGTH=str(50 * 1024 * 1024)
    )

    assert response.status_code == 413
    assert everywhere() == before


def test_json_without_a_file_is_refused(client, everywhere):
    before = everywhere()

    response = client.post(LIST_URL, {"title": "Harbour"}, format="json")

    assert response.status_code == 400
    assert response.json() == {"file": ["No file was submitted."]}
    assert everywhere() == before


def test_a_broken_multipart_body_is_a_400(client, everywhere):
    before = everywhere()

    response = client.generic(
        "POST", LIST_URL, b"--nothing-like-the-boundary\r\ngarbage", content_type="multipart/form-data; boundary=abc"
    )

    assert response.status_code == 400
    assert response.json() == {"title": ["This field is required."], "file": ["No file was submitted."]}
    assert everywhere() == before


def test_an_unsupported_media_type_is_a_415(client, everywhere):
    before = everywhere()

    response = client.generic("POST", LIST_URL, b"title=x", content_type="text/plain")

    assert response.status_code == 415
    assert response.json() == {"detail": 'Unsupported media type "text/plain" in request.'}
    assert everywhere() == before


def test_an_empty_replacement_file_changes_nothing(client, everywhere, user):
    response = client.post(LIST_URL, good_fields(), format="multipart")
    assert response.status_code == 201
    before = everywhere()

    response = client.patch(f"{LIST_URL}{response.json()['id']}/", {"file": upload("c.mp4", b"")}, format="multipart")

    assert response.status_code == 400
    assert response.json() == {"file": ["The submitted file is empty."]}
    assert everywhere() == before


@pytest.mark.parametrize(
    ("sent_name", "stored_prefix"),
    [
        ("../../etc/passwd.mp4", "passwd_"),
        ("..\\..\\windows\\evil.mp4", "evil_"),
        ("Ünïcødé clip.mp4", "Unicde_clip_"),
        ("a\x07b\x1bc.mp4", "abc_"),
        ("n" * 300 + ".mp4", "n" * 96 + "_"),
    ],
)
def test_file_names_are_cleaned_not_trusted(client, everywhere, sent_name, stored_prefix):
    response = client.post(LIST_URL, good_fields(file=video_upload(sent_name)), format="multipart")

    assert response.status_code == 201, response.content
    key = Video.objects.get().file.name.split(":", 1)[1]
    folder, _, file_name = key.rpartition("/")
    assert folder.startswith("videos/") and ".." not in key
    assert file_name.startswith(stored_prefix) and file_name.endswith(".mp4")
