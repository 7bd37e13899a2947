"""What an uploaded video must be: judged by its content, not only by its name."""

import posixpath
import re
import unicodedata

import filetype
from django.core.exceptions import ValidationError
from django.utils.text import get_valid_filename

VIDEO_EXTENSIONS = ("mp4", "m4v", "mov", "webm", "mkv", "avi", "mpeg", "mpg", "ogv")
# Bytes read from the start of a file to recognise its type (filetype needs 261).
SNIFF_BYTES = 8192
MAX_NAME_LENGTH = 100


def sniff(uploaded_file):
    """The type ``filetype`` recognises from the first bytes, or None."""
    position = uploaded_file.tell() if hasattr(uploaded_file, "tell") else 0
    uploaded_file.seek(0)
    head = uploaded_file.read(SNIFF_BYTES)
    uploaded_file.seek(position)
    return filetype.guess(head)


def _split_name(name):
    """``(root, extension)`` of the last part of ``name``, compatibility-normalised and
    without control or format characters (a right-to-left override, say); the extension
    lower-case, without its dot, ``""`` when there is none."""
    name = posixpath.basename((name or "").replace("\\", "/"))
    name = "".join(character for character in unicodedata.normalize("NFKC", name) if character.isprintable())
    root, extension = posixpath.splitext(name)
    return root, extension.lstrip(".").lower()


def validate_video_file(uploaded_file):
    """Raise ValidationError unless the file is a non-empty video with a video's name."""
    if not uploaded_file.size:
        raise ValidationError("The submitted file is empty.", code="empty")
    extension = _split_name(uploaded_file.name)[1]
    if extension not in VIDEO_EXTENSIONS:
        raise ValidationError(
            "Files of type %(extension)s are not accepted; upload one of: %(allowed)s.",
            code="invalid_extension",
            params={"extension": f".{extension}" if extension else "(none)", "allowed": ", ".join(VIDEO_EXTENSIONS)},
        )
    kind = sniff(uploaded_file)
    if kind is None or not kind.mime.startswith("video/"):
        found = kind.mime if kind else "unrecognised data"
        raise ValidationError(
            "The file is not a video: its content is %(found)s.", code="not_a_video", params={"found": found}
        )
    return kind.mime


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
    root = get_valid_filename(root) if root else ""
    root = root.strip("._-")[: MAX_NAME_LENGTH - len(extension)] or default
    return f"{root}{extension}"
