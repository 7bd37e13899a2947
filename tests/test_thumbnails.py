"""Uploaded thumbnails: JPEG, PNG or WebP by content, no decompression bombs, re-encoded
to a bounded size under a name that matches what they became, and served as that image type."""

import io
import os
import struct
import zlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import video_upload
from videos import validators
from videos.models import Video

# Pillow warns of pictures over its own limit as it reads their header; they are refused anyway.
pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")


@pytest.fixture(autouse=True)
def local_storage(settings):
    settings.STORAGE_PROVIDERS = ["local"]


@pytest.fixture
def api(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def encoded(image, image_format, **options):
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width, height):
    """A valid black-and-white PNG of ``width`` x ``height``: a few kilobytes that decode to width x height bytes."""
    row = b"\x00" * (1 + (width + 7) // 8)  # filter type 0, then the row's bits
    compressor = zlib.compressobj(9)
    pixels = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", pixels) + png_chunk(b"IEND", b"")


def pdf_polyglot():
    """A small PNG that PDF readers also open: the PDF follows the image's end."""
    pdf = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
    pdf += b"trailer<</Root 1 0 R>>\n%%EOF\n"
    return encoded(Image.new("RGB", (64, 48), (200, 30, 30)), "PNG") + pdf


def post(api, thumbnail, name):
    return api.post(
        "/api/videos/",
        {
            "title": "Clip",
            "file": video_upload(),
            "is_published": "true",
            "thumbnail": SimpleUploadedFile(name, thumbnail),
        },
    )


def stored_thumbnail(media_root):
    video = Video.objects.get()
    key = video.thumbnail.name.removeprefix("local:")
    return key, (media_root / key).read_bytes()


def nothing_stored(media_root):
    return not Video.objects.exists() and not (media_root.exists() and any(p.is_file() for p in media_root.rglob("*")))


def test_a_png_pdf_polyglot_is_stored_as_a_plain_png_and_served_as_one(api, media_root):
    response = post(api, pdf_polyglot(), "poly.pdf")

    assert response.status_code == 201, response.content
    key, data = stored_thumbnail(media_root)
    assert key.startswith("thumbnails/") and key.endswith(".png") and ".pdf" not in key
    assert b"%PDF" not in data
    assert Image.open(io.BytesIO(data)).format == "PNG"
    served = APIClient().get(response.json()["thumbnail_url"])
    assert served.status_code == 200 and served["Content-Type"] == "image/png"


@pytest.mark.parametrize(
    ("width", "height", "message"),
    [
        (12000, 12000,
         "The image has 144 megapixels (12000 × 12000 pixels); a thumbnail may have at most 40 megapixels."),
        (7000, 6000, "The image has 42 megapixels (7000 × 6000 pixels); a thumbnail may have at most 40 megapixels."),
        (20000, 20000, "The image has over 179 megapixels; a thumbnail may have at most 40 megapixels."),
    ],
)
def test_a_decompression_bomb_is_refused_with_the_limit(api, media_root, width, height, message):
    bomb = png_bomb(width, height)
    assert len(bomb) < 200_000

    response = post(api, bomb, "bomb.png")

    assert response.status_code == 400
    assert response.json() == {"thumbnail": [message]}
    assert nothing_stored(media_root)


def test_a_picture_is_refused_by_its_header_before_it_is_decoded(api, media_root):
    header = struct.pack(">IIBBBBB", 12000, 12000, 1, 0, 0, 0, 0)
    header_only = (  # the header of a bomb, and pixel data cut short: decoding it would fail
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", b"\x78\x9c\x00")
        + png_chunk(b"IEND", b"")
    )

    response = post(api, header_only, "big.png")

    assert response.json()["thumbnail"] == [
        "The image has 144 megapixels (12000 × 12000 pixels); a thumbnail may have at most 40 megapixels."
    ]


@pytest.mark.parametrize(
    ("name", "image_format", "mime"), [("anim.gif", "GIF", "image/gif"), ("icon.bmp", "BMP", "image/bmp")]
)
def test_other_image_types_are_refused(api, media_root, name, image_format, mime):
    response = post(api, encoded(Image.new("RGB", (8, 8)), image_format), name)

    assert response.status_code == 400
    assert response.json() == {"thumbnail": [f"Thumbnails must be JPEG, PNG or WebP images; this one is {mime}."]}
    assert nothing_stored(media_root)


def test_a_large_photo_is_turned_upright_and_shrunk_to_the_bound(api, media_root):
    photo = Image.new("RGB", (4000, 3000), (20, 120, 220))
    photo.paste((250, 250, 0), (0, 0, 2000, 3000))  # left half yellow
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90° clockwise: the yellow half on top
    exif[0x8825] = {2: (51.0, 30.0, 0.0)}  # a GPS position, which must not be kept

    response = post(api, encoded(photo, "JPEG", exif=exif.tobytes(), quality=90), "photo.JPG")

    assert response.status_code == 201, response.content
    key, data = stored_thumbnail(media_root)
    stored = Image.open(io.BytesIO(data))
    assert key.endswith(".jpg") and stored.format == "JPEG"
    assert stored.size == (1440, 1920)
    red, green, blue = stored.convert("RGB").getpixel((720, 100))
    assert red > 200 and green > 200 and blue < 60  # upright: yellow on top
    assert not stored.getexif()


@pytest.mark.parametrize(("image_format", "extension"), [("PNG", ".png"), ("WEBP", ".webp")])
def test_a_transparent_picture_keeps_its_transparency(api, media_root, image_format, extension):
    picture = Image.new("RGBA", (300, 200), (0, 0, 0, 0))
    picture.paste((10, 200, 10, 255), (100, 50, 200, 150))

    response = post(api, encoded(picture, image_format), f"logo{extension}")

    assert response.status_code == 201, response.content
    key, data = stored_thumbnail(media_root)
    stored = Image.open(io.BytesIO(data))
    assert key.endswith(extension) and stored.format == image_format
    assert stored.mode == "RGBA" and stored.getpixel((0, 0))[3] == 0 and stored.getpixel((150, 100))[3] == 255
    served = APIClient().get(response.json()["thumbnail_url"])
    assert served["Content-Type"] == f"image/{image_format.lower()}"


@pytest.mark.parametrize(
    ("mode", "image_format", "stored_as"), [("RGB", "JPEG", "JPEG"), ("RGB", "PNG", "JPEG"), ("RGBA", "PNG", "WEBP")]
)
def test_a_thumbnail_fits_in_its_bytes_whatever_its_content(api, media_root, mode, image_format, stored_as):
    noise = Image.frombytes(mode, (1920, 1920), os.urandom(1920 * 1920 * len(mode)))  # compresses worst of all

    response = post(api, encoded(noise, image_format, **({"quality": 100} if image_format == "JPEG" else {})), "n.png")

    assert response.status_code == 201, response.content
    key, data = stored_thumbnail(media_root)
    assert len(data) <= validators.THUMBNAIL_MAX_BYTES
    stored = Image.open(io.BytesIO(data))
    assert stored.format == stored_as and key.endswith("." + validators.THUMBNAIL_EXTENSIONS[stored_as])
    assert max(stored.size) <= 1920


def test_the_admin_applies_the_same_rules(client, staff_user, media_root):
    client.force_login(staff_user)
    url = reverse("admin:videos_video_add")
    fields = {"title": "Clip", "description": "", "owner": staff_user.pk, "file": video_upload()}

    refused = client.post(url, {**fields, "thumbnail": SimpleUploadedFile("bomb.png", png_bomb(12000, 12000))})
    assert refused.status_code == 200
    assert refused.context["adminform"].form.errors["thumbnail"] == [
        "The image has 144 megapixels (12000 × 12000 pixels); a thumbnail may have at most 40 megapixels."
    ]
    assert nothing_stored(media_root)

    fields["file"] = video_upload()
    accepted = client.post(url, {**fields, "thumbnail": SimpleUploadedFile("poly.pdf", pdf_polyglot())})
    assert accepted.status_code == 302, accepted.context["adminform"].form.errors
    key, data = stored_thumbnail(media_root)
    assert key.endswith(".png") and b"%PDF" not in data
