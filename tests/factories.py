"""Small builders for test data."""

import hashlib
import os
import struct

from django.core.files.uploadedfile import SimpleUploadedFile

# The first bytes of an MP4 file: an ftyp box naming the isom brand.
MP4_HEADER = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41"
FREE_BOX_HEADER = 8


def video_bytes(size=4096):
    """``size`` bytes that sniff as MP4, different on every call: the ftyp box, then a
    ``free`` box of random bytes (a box every reader skips), so a file stored or read
    back in place of another, or zeroed, never compares equal."""
    padding = size - len(MP4_HEADER)
    if padding < FREE_BOX_HEADER:
        return MP4_HEADER + os.urandom(max(0, padding))
    return MP4_HEADER + struct.pack(">I", padding) + b"free" + os.urandom(padding - FREE_BOX_HEADER)


def video_upload(name="clip.mp4", size=4096, body=None):
    """An uploaded MP4 of ``size`` bytes (or of ``body``); its bytes are in ``.body``."""
    upload = SimpleUploadedFile(name, video_bytes(size) if body is None else body, content_type="video/mp4")
    upload.body = upload.read()
    upload.seek(0)
    return upload


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def real_video(directory, name="clip.mp4", seconds=2, codec_args=("-c:v", "libx264", "-pix_fmt", "yuv420p")):
    """A short, playable video made by ffmpeg: a test pattern with a tone."""
    import subprocess
    from pathlib import Path

    path = Path(directory) / name
    subprocess.run(
        [
            "ffmpeg", "-v", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc=duration={seconds}:size=160x90:rate=10",
            "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
            *codec_args, "-shortest", str(path),
        ],
        check=True,
        timeout=120,
    )
    return path


def uploaded(path, content_type="video/mp4"):
    return SimpleUploadedFile(path.name, path.read_bytes(), content_type=content_type)
