"""ffprobe and ffmpeg on hostile files: bounded in time, CPU, memory and frame size.

A file that reaches a bound is still stored, without a duration or a poster, and the
log says which bound stopped the tool. The tools here are the real ones.
"""

import io
import logging
import os
import resource
import subprocess
import threading
import time

import pytest
from PIL import Image
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import real_video, uploaded
from videos import probe
from videos.models import Video

pytestmark = pytest.mark.skipif(not probe.tools_available(), reason="needs ffprobe and ffmpeg")

# A loaded 2-CPU machine may take this much longer than a bound to notice and stop a tool.
MARGIN_SECONDS = 5


class OnDisk:
    """An upload already on disk, as Django's TemporaryUploadedFile is."""

    def __init__(self, path):
        self.path = str(path)
        self.name = os.path.basename(self.path)

    def temporary_file_path(self):
        return self.path


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return real_video(tmp_path_factory.mktemp("clips"), seconds=2)


@pytest.fixture(scope="module")
def huge_frames(tmp_path_factory):
    """A 3-second Matroska video of 16000 x 16000 grey frames: 9 MB on disk, 256 MB a frame decoded."""
    folder = tmp_path_factory.mktemp("huge")
    frame = folder / "frame.jpg"
    Image.new("L", (16000, 16000), 90).save(frame, quality=10)
    video = folder / "huge.mkv"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-loop", "1", "-framerate", "1", "-t", "3", "-i", str(frame), "-c:v", "copy",
         str(video)],
        check=True, timeout=120,
    )
    frame.unlink()
    return video


@pytest.fixture
def fifo(tmp_path):
    """A named pipe that nobody writes to: opening it for reading waits for ever."""
    path = tmp_path / "never.mp4"
    os.mkfifo(path)
    yield path
    try:  # let a tool still waiting on it (a failed run) see the end of the file and exit
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass


def test_a_file_that_never_delivers_data_is_given_up_after_the_timeout(fifo, monkeypatch, caplog):
    monkeypatch.setattr(probe, "PROBE_TIMEOUT", 2)
    result = {}
    started = time.monotonic()
    worker = threading.Thread(target=lambda: result.update(info=probe.inspect(OnDisk(fifo))), daemon=True)

    worker.start()
    worker.join(2 + MARGIN_SECONDS)

    assert not worker.is_alive(), "inspect() still waits on the pipe"
    assert time.monotonic() - started < 2 + MARGIN_SECONDS
    assert result["info"] == probe.MediaInfo()
    assert "Stopped inspecting never.mp4: ffprobe ran past the inspection's 2 s and was stopped" in caplog.text


def test_frames_larger_than_the_limit_are_not_decoded(huge_frames, caplog):
    caplog.set_level(logging.INFO, logger="videos.probe")

    info = probe.inspect(OnDisk(huge_frames))

    assert info == probe.MediaInfo(duration=3.0, poster_jpeg=None)
    assert [(record.levelname, record.getMessage()) for record in caplog.records] == [
        ("WARNING", "Stopped inspecting huge.mkv: the video's frames are larger than the 33.2 megapixels decoded; "
                    "it is stored without a poster"),
    ]


def test_a_poster_is_no_larger_than_a_thumbnail_may_be(tmp_path):
    video = tmp_path / "wide.mkv"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=duration=2:size=3000x1000:rate=2", "-c:v", "mjpeg",
         str(video)],
        check=True, timeout=120,
    )

    poster = probe.inspect(OnDisk(video)).poster_jpeg

    assert Image.open(io.BytesIO(poster)).size == (1920, 640)


def test_a_decoder_that_needs_more_memory_than_allowed_is_stopped(huge_frames, clip, monkeypatch, caplog):
    monkeypatch.setattr(probe, "PROBE_MAX_PIXELS", 300_000_000)  # let the frame through to the decoder
    monkeypatch.setattr(probe, "PROBE_MEMORY_MB", 448)

    assert probe.inspect(OnDisk(clip)).poster_jpeg  # an ordinary video fits in the same limit
    info = probe.inspect(OnDisk(huge_frames))

    assert info == probe.MediaInfo(duration=3.0, poster_jpeg=None)
    assert "Stopped inspecting huge.mkv: ffmpeg ran out of its 448 MB of memory" in caplog.text


def test_a_tool_that_spins_is_stopped_by_its_cpu_limit(monkeypatch):
    monkeypatch.setattr(probe, "PROBE_CPU_SECONDS", 1)
    monkeypatch.setattr(probe, "PROBE_TIMEOUT", 30)  # the CPU limit, not the clock, must stop it

    with pytest.raises(probe.LimitReached, match=r"^sh used its 1 s of CPU time and was stopped$"):
        probe._run(["sh", "-c", "while :; do :; done"], time.monotonic() + probe.PROBE_TIMEOUT)


def test_a_tool_that_floods_its_error_output_is_stopped(monkeypatch):
    monkeypatch.setattr(probe, "PROBE_TIMEOUT", 30)

    with pytest.raises(probe.LimitReached, match=r"^sh wrote more than 1048576 bytes of messages and was stopped$"):
        probe._run(["sh", "-c", "while :; do echo 'Invalid NAL unit size' >&2; done"], time.monotonic() + 30)


@pytest.fixture
def core_dumps_allowed():
    """This process allows core dumps, as a server's shell may: the tools must not inherit that."""
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))
    yield
    resource.setrlimit(resource.RLIMIT_CORE, (soft, hard))


def test_a_crashing_tool_leaves_no_core_dump(core_dumps_allowed):
    output = probe._run(["sh", "-c", "ulimit -c"], time.monotonic() + 10)

    assert output.strip() == b"0"


def test_an_upload_whose_frames_are_too_large_is_stored_without_a_poster(settings, user, huge_frames, caplog):
    settings.STORAGE_PROVIDERS = ["local"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")

    response = client.post("/api/videos/", {"title": "Huge", "file": uploaded(huge_frames, "video/x-matroska")})

    assert response.status_code == 201, response.content
    video = Video.objects.get()
    assert (video.duration_seconds, video.thumbnail.name or None) == (3.0, None)
    assert "Stopped inspecting huge.mkv: the video's frames are larger than" in caplog.text
