"""Duration and a poster frame of an uploaded video, with ffprobe and ffmpeg where installed.

Without them (or for a file they cannot read) both come back empty: a video without a
duration or a poster is still a video.
"""

import logging
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass

logger = logging.getLogger(__name__)

PROBE_TIMEOUT = 60


@dataclass(frozen=True)
class MediaInfo:
    duration: float | None = None
    poster_jpeg: bytes | None = None


def tools_available():
    return bool(shutil.which("ffprobe") and shutil.which("ffmpeg"))


@contextmanager
def local_path(uploaded_file):
    """A path on disk holding the upload: its temporary file, or a copy of it."""
    temporary_file_path = getattr(uploaded_file, "temporary_file_path", None)
    if temporary_file_path:
        yield temporary_file_path()
        return
    with tempfile.NamedTemporaryFile(suffix=".video") as copy:
        uploaded_file.seek(0)
        shutil.copyfileobj(uploaded_file, copy, 1024 * 1024)
        copy.flush()
        uploaded_file.seek(0)
        yield copy.name


def inspect(uploaded_file, want_poster=True) -> MediaInfo:
    if not tools_available():
        return MediaInfo()
    try:
        with local_path(uploaded_file) as path:
            duration = _duration(path)
            poster = _poster(path, duration) if want_poster else None
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        logger.info("Could not inspect %s: %s", getattr(uploaded_file, "name", "upload"), exc)
        return MediaInfo()
    return MediaInfo(duration, poster)


def _duration(path):
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "default=noprint_wrappers=1:nokey=1", path],
        capture_output=True,
        text=True,
        timeout=PROBE_TIMEOUT,
    )
    value = result.stdout.strip()
    if result.returncode != 0 or not value or value == "N/A":
        return None
    return round(float(value), 3)


def _poster(path, duration):
    offset = min(1.0, duration / 2) if duration else 0
    result = subprocess.run(
        ["ffmpeg", "-v", "error", "-ss", f"{offset:.3f}", "-i", path, "-frames:v", "1", "-f", "image2", "-c:v", "mjpeg", "pipe:1"],
        capture_output=True,
        timeout=PROBE_TIMEOUT,
    )
    return result.stdout if result.returncode == 0 and result.stdout else None
