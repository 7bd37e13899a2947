"""What an uploaded video and thumbnail must be: judged by their content, not only by their names."""

import io
import posixpath
import re
import unicodedata

import filetype
from django.core.exceptions import SuspiciousFileOperation, ValidationError
from django.core.files.base import ContentFile
from django.utils.text import get_valid_filename
from PIL import Image, ImageOps

VIDEO_EXTENSIONS = ("mp4", "m4v", "mov", "webm", "mkv", "avi", "mpeg", "mpg", "ogv")
# Bytes read from the start of a file to recognise its type (filetype needs 261).
SNIFF_BYTES = 8192
MAX_NAME_LENGTH = 100

# Thumbnails: the formats accepted (by content), as Pillow names them, and what they become.
THUMBNAIL_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}
THUMBNAIL_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
THUMBNAIL_MAX_PIXELS = 40_000_000  # of the upload, read from its header before decoding
THUMBNAIL_MAX_SIDE = 1920  # of the stored thumbnail, in pixels
THUMBNAIL_MAX_BYTES = 2 * 1024 * 1024  # of the stored thumbnail
THUMBNAIL_QUALITY = 80  # of the JPEG and WebP encoders
INVALID_IMAGE = "Upload a valid image. The file you uploaded was either not an image or a corrupted image."


def read_head(uploaded_file):
    """The first ``SNIFF_BYTES`` of a file, its position kept."""
    position = uploaded_file.tell() if hasattr(uploaded_file, "tell") else 0
    uploaded_file.seek(0)
    head = uploaded_file.read(SNIFF_BYTES)
    uploaded_file.seek(position)
    return head


def sniff(uploaded_file):
    """The type ``filetype`` recognises from the first bytes, or None."""
    return filetype.guess(read_head(uploaded_file))


def _split_name(name):
    """``(root, extension)`` of the last part of ``name``, compatibility-normalised and
    without control or format characters (a right-to-left override, say); the extension
    lower-case, without its dot, ``""`` when there is none."""
    name = "".join(character for character in unicodedata.normalize("NFKC", name or "") if character.isprintable())
    root, extension = posixpath.splitext(posixpath.basename(name.replace("\\", "/")))
    return root, extension.lstrip(".").lower()


def validate_video_file(uploaded_file):
    """Raise ValidationError unless the file is a non-empty video with a video's name."""
    if not uploaded_file.size:
        raise ValidationError("The submitted file is empty.", code="empty")
    validate_video_name(uploaded_file.name)
    return video_type_of(read_head(uploaded_file))


def validate_video_name(name):
    """Raise ValidationError unless ``name`` has one of the video extensions."""
    extension = _split_name(name)[1]
    if extension not in VIDEO_EXTENSIONS:
        raise ValidationError(
            "Files of type %(extension)s are not accepted; upload one of: %(allowed)s.",
            code="invalid_extension",
            params={"extension": f".{extension}" if extension else "(none)", "allowed": ", ".join(VIDEO_EXTENSIONS)},
        )


def video_type_of(head):
    """The video type that the first bytes of a file show (``SNIFF_BYTES`` of them), or
    ValidationError when they are not a video's."""
    kind = filetype.guess(head)
    if kind is None or not kind.mime.startswith("video/"):
        found = kind.mime if kind else "unrecognised data"
        raise ValidationError(
            "The file is not a video: its content is %(found)s.", code="not_a_video", params={"found": found}
        )
    return kind.mime


def clean_video_file(uploaded_file):
    """Check an uploaded video and ready it to be stored; returns its type by content.

    The file gets a clean name and, as its content type, the one its content shows:
    providers that keep a content type (S3) must never keep the one the client declared.
    """
    content_type = validate_video_file(uploaded_file)
    uploaded_file.name = clean_file_name(uploaded_file.name)
    uploaded_file.content_type = content_type
    return content_type


def clean_file_name(name, default="video"):
    """A short ASCII name without paths or control characters, keeping the extension.

    The extension is split off before the name is reduced to ASCII, so a name in any
    script keeps it: ``視頻.mp4`` becomes ``video.mp4`` (``default`` stands in for a
    name with no ASCII left).
    """
    root, extension = _split_name(name)
    extension = re.sub(r"[^a-z0-9]", "", extension)[:10]
    extension = f".{extension}" if extension else ""
    root = unicodedata.normalize("NFKD", root).encode("ascii", "ignore").decode().strip(" .")
    try:
        root = get_valid_filename(root)
    except SuspiciousFileOperation:  # nothing of the name is valid in a file name ("`", "")
        root = ""
    root = root.strip("._-")[: MAX_NAME_LENGTH - len(extension)] or default
    return f"{root}{extension}"


def clean_thumbnail(uploaded_file):
    """The uploaded picture as a stored thumbnail: a ContentFile re-encoded by Pillow.

    Only JPEG, PNG and WebP content is accepted, at most ``THUMBNAIL_MAX_PIXELS`` by its
    header, so a decompression bomb is refused before it is decoded. The picture is
    turned upright (EXIF orientation), shrunk to ``THUMBNAIL_MAX_SIDE`` and encoded again
    within ``THUMBNAIL_MAX_BYTES``, without its metadata or anything appended to it; its
    name's extension is the new format's, whatever the upload was called.
    """
    if not uploaded_file.size:
        raise ValidationError("The submitted file is empty.", code="empty")
    kind = sniff(uploaded_file)
    if kind is None or not kind.mime.startswith("image/"):
        raise ValidationError(INVALID_IMAGE, code="invalid_image")
    if kind.mime not in THUMBNAIL_FORMATS:
        raise ValidationError(
            "Thumbnails must be JPEG, PNG or WebP images; this one is %(found)s.",
            code="invalid_image_type",
            params={"found": kind.mime},
        )
    source_format = THUMBNAIL_FORMATS[kind.mime]
    uploaded_file.seek(0)
    try:
        image = Image.open(uploaded_file, formats=[source_format])
        width, height = image.size
        if width * height > THUMBNAIL_MAX_PIXELS:
            raise _too_many_pixels(f"{width * height / 1e6:.0f} megapixels ({width} × {height} pixels)")
        image.thumbnail((THUMBNAIL_MAX_SIDE, THUMBNAIL_MAX_SIDE))  # decodes, JPEG at a reduced scale
        image = ImageOps.exif_transpose(image)
        data, output_format = _encode(_without_needless_alpha(image), source_format)
    except Image.DecompressionBombError:  # Pillow's own limit, above ours
        raise _too_many_pixels(f"over {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels") from None
    except ValidationError:
        raise
    except Exception:  # whatever Pillow raises on a damaged file, as Django's ImageField does
        raise ValidationError(INVALID_IMAGE, code="invalid_image") from None
    finally:
        uploaded_file.seek(0)
    root = posixpath.splitext(clean_file_name(uploaded_file.name, default="thumbnail"))[0]
    return ContentFile(data, name=f"{root}.{THUMBNAIL_EXTENSIONS[output_format]}")


def _too_many_pixels(found):
    return ValidationError(
        "The image has %(found)s; a thumbnail may have at most %(limit)s megapixels.",
        code="too_many_pixels",
        params={"found": found, "limit": f"{THUMBNAIL_MAX_PIXELS / 1e6:.0f}"},
    )


def _without_needless_alpha(image):
    """RGBA when the picture has transparency, RGB otherwise (an all-opaque alpha dropped)."""
    if image.has_transparency_data:
        image = image.convert("RGBA")
        if image.getchannel("A").getextrema()[0] < 255:
            return image
    return image.convert("RGB")


def _encode(image, source_format):
    """``(bytes, format)`` of ``image`` within ``THUMBNAIL_MAX_BYTES``.

    A PNG stays a PNG when it fits; otherwise the picture is encoded lossily (WebP
    when it has transparency or was a WebP, else JPEG), shrunk by what it overshot
    until it fits: a few encodings at most, whatever the content.
    """
    if source_format == "PNG":
        data = _save(image, "PNG")
        if len(data) <= THUMBNAIL_MAX_BYTES:
            return data, "PNG"
    lossy_format = "WEBP" if image.mode == "RGBA" or source_format == "WEBP" else "JPEG"
    while True:
        # WebP's fastest method: its slower ones cost seconds on a noisy picture, for little.
        options = {"method": 0} if lossy_format == "WEBP" else {}
        data = _save(image, lossy_format, quality=THUMBNAIL_QUALITY, **options)
        if len(data) <= THUMBNAIL_MAX_BYTES:
            return data, lossy_format
        factor = 0.9 * (THUMBNAIL_MAX_BYTES / len(data)) ** 0.5
        image = image.resize((max(1, int(image.width * factor)), max(1, int(image.height * factor))))


def _save(image, image_format, **options):
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()
