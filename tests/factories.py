"""Small builders for test data."""

from django.core.files.uploadedfile import SimpleUploadedFile

# The first bytes of an MP4 file: an ftyp box naming the isom brand.
MP4_HEADER = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41"


def video_upload(name="clip.mp4", size=4096):
    body = MP4_HEADER + b"\x00" * max(0, size - len(MP4_HEADER))
    return SimpleUploadedFile(name, body, content_type="video/mp4")


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
