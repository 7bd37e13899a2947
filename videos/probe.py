"""Duration and a poster frame of an uploaded video, with ffprobe and ffmpeg where installed.

Without them (or for a file they cannot read) both come back empty: a video without a
duration or a poster is still a video.

The tools parse whatever was uploaded, so each runs bounded: in wall-clock time (the
whole inspection), CPU time, address space, frame size and messages written. A file
that reaches a bound is stored all the same, without what was not found, and the log
says which bound stopped it.
"""

import logging
import os
import posixpath
import re
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass

from videos.validators import THUMBNAIL_MAX_SIDE

logger = logging.getLogger(__name__)

PROBE_TIMEOUT = 20  # seconds of wall-clock time for ffprobe and ffmpeg together
PROBE_CPU_SECONDS = 10  # of CPU time, each
PROBE_MEMORY_MB = 1024  # of address space, each; Debian's ffmpeg takes about 300 to start
PROBE_MAX_PIXELS = 7680 * 4320  # the largest frame decoded: 8K UHD
PROBE_MESSAGE_BYTES = 1024 * 1024  # of error messages, each
PROBE_BYTES = 5_000_000  # read to find the streams (-probesize)
PROBE_ANALYZE_MICROSECONDS = 5_000_000  # of the file analysed to find them (-analyzeduration)
PROBE_READ_MICROSECONDS = 10_000_000  # one read of a stored file through its URL (-rw_timeout)

# What ffmpeg says when an allocation fails under the address-space limit.
# The query of a URL in a tool's message: a presigned URL's signature and credential.
URL_QUERY = re.compile(r"(https?://[^\s?]*)\?\S*")
OUT_OF_MEMORY_MESSAGES = ("Cannot allocate memory", "get_buffer() failed", "Out of memory", "std::bad_alloc")


@dataclass(frozen=True)
class MediaInfo:
    duration: float | None = None
    poster_jpeg: bytes | None = None


class LimitReached(Exception):
    """ffprobe or ffmpeg was stopped by one of the bounds above."""


class ToolFailed(Exception):
    """ffprobe or ffmpeg could not read the file."""


class ReadFailed(Exception):
    """A stored file could not be inspected through its URL (``inspect(..., raise_read_errors=True)``):
    a provider fault that may pass, so the caller may try again."""


def tools_available():
    return bool(shutil.which("ffprobe") and shutil.which("ffmpeg"))


@contextmanager
def local_path(uploaded_file):
    """A path on disk holding the upload: its temporary file, or a copy of it.

    The local provider moves a temporary upload into ``MEDIA_ROOT``; the upload's open
    file still reads it then, so it is copied like an upload kept in memory.
    """
    temporary_file_path = getattr(uploaded_file, "temporary_file_path", None)
    if temporary_file_path and os.path.exists(temporary_file_path()):
        yield temporary_file_path()
        return
    with tempfile.NamedTemporaryFile(suffix=".video") as copy:
        uploaded_file.seek(0)
        shutil.copyfileobj(uploaded_file, copy, 1024 * 1024)
        copy.flush()
        uploaded_file.seek(0)
        yield copy.name


@contextmanager
def readable_source(source):
    """What ffprobe reads: ``source`` itself when it is a path or URL (a stored file,
    read through its URL with ranged reads), else a path holding the upload."""
    if isinstance(source, str):
        yield source
    else:
        with local_path(source) as path:
            yield path


def inspect(source, want_poster=True, *, raise_read_errors=False) -> MediaInfo:
    """Duration and poster of a video: ``source`` is an uploaded file, or the path or
    URL of a stored one. A file that cannot be inspected gives neither, logged; with
    ``raise_read_errors``, a URL that cannot be read raises ReadFailed instead (the
    background job that asks tries again later)."""
    if not tools_available():
        return MediaInfo()
    if isinstance(source, str):
        name = posixpath.basename(source.split("?", 1)[0])
    else:
        name = getattr(source, "name", None) or "upload"
    deadline = time.monotonic() + PROBE_TIMEOUT
    duration = poster = None
    # A stored file read through its URL whose reads may fail for a while: a duration
    # that could not be read is a failure to try again, not a file without one.
    retry_reads = raise_read_errors and isinstance(source, str) and source.startswith(("http://", "https://"))
    try:
        with readable_source(source) as path:
            duration = _duration(path, deadline, poster_may_follow=not retry_reads)
            poster = _poster(path, duration, deadline) if want_poster else None
    except LimitReached as exc:
        logger.warning("Stopped inspecting %s: %s; it is stored without %s", name, without_url_queries(exc),
                       "a poster" if duration is not None else "a duration or a poster")
    except (ToolFailed, OSError, subprocess.SubprocessError, ValueError) as exc:
        reason = without_url_queries(exc)
        if retry_reads:
            raise ReadFailed(f"Could not inspect {name}: {reason}") from None
        logger.info("Could not inspect %s: %s", name, reason)
    return MediaInfo(duration, poster)


def without_url_queries(message):
    """``message`` with the query of every URL in it cut (``https://host/key?…``)."""
    return URL_QUERY.sub(r"\1?…", str(message))


def _input_bounds(path):
    """Options in front of ``-i``: how much is read and decoded, by one thread, and
    through which protocols: a file reads only files, a URL only HTTP(S), with a
    timeout on each read."""
    bounds = [
        "-probesize", str(PROBE_BYTES),
        "-analyzeduration", str(PROBE_ANALYZE_MICROSECONDS),
        "-threads", "1",
        "-max_pixels", str(PROBE_MAX_PIXELS),
    ]
    if path.startswith(("http://", "https://")):
        return [*bounds, "-protocol_whitelist", "http,https,tcp,tls", "-rw_timeout", str(PROBE_READ_MICROSECONDS)]
    return [*bounds, "-protocol_whitelist", "file"]


def _duration(path, deadline, poster_may_follow=True):
    try:
        output = _run(
            ["ffprobe", "-v", "error", *_input_bounds(path), "-show_entries", "format=duration",
             "-of", "default=noprint_wrappers=1:nokey=1", path],
            deadline,
        )
    except ToolFailed:
        if not poster_may_follow:
            raise
        return None  # the poster may still be cut
    value = output.decode().strip()
    if not value or value == "N/A":
        return None
    return round(float(value), 3)


def _poster(path, duration, deadline):
    offset = min(1.0, duration / 2) if duration else 0
    # A poster is stored as the thumbnail: bounded as an uploaded one is.
    side = THUMBNAIL_MAX_SIDE
    scale = f"scale=w='min(iw,{side})':h='min(ih,{side})':force_original_aspect_ratio=decrease"
    output = _run(
        ["ffmpeg", "-v", "error", "-ss", f"{offset:.3f}", *_input_bounds(path), "-i", path,
         "-map", "0:v:0", "-frames:v", "1", "-vf", scale, "-filter_threads", "1", "-threads", "1",
         "-f", "image2", "-c:v", "mjpeg", "pipe:1"],
        deadline,
    )
    return output or None


def _run(command, deadline):
    """The standard output of ``command`` run within the bounds.

    Raises LimitReached when a bound stopped it, ToolFailed when it could not read the file.
    """
    tool = command[0]
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise LimitReached(f"{tool} was not started: the inspection used its {PROBE_TIMEOUT} s")
    with tempfile.TemporaryFile() as messages:
        try:
            result = subprocess.run(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=messages,
                timeout=remaining, preexec_fn=_limit_child,
            )
        except subprocess.TimeoutExpired:
            raise LimitReached(f"{tool} ran past the inspection's {PROBE_TIMEOUT} s and was stopped") from None
        messages.seek(max(0, messages.seek(0, 2) - 4096))
        said = messages.read().decode(errors="replace")
    if result.returncode == 0:
        return result.stdout
    last_line = said.strip().splitlines()[-1] if said.strip() else "no message"
    if result.returncode < 0:
        raise LimitReached(_signal_reason(tool, -result.returncode))
    if "exceeds specified max pixel count" in said:
        raise LimitReached(f"the video's frames are larger than the {PROBE_MAX_PIXELS / 1e6:.1f} megapixels decoded")
    if any(message in said for message in OUT_OF_MEMORY_MESSAGES):
        raise LimitReached(f"{tool} ran out of its {PROBE_MEMORY_MB} MB of memory ({last_line})")
    raise ToolFailed(f"{tool} exited with status {result.returncode}: {last_line}")


def _signal_reason(tool, number):
    if number == signal.SIGXCPU:
        return f"{tool} used its {PROBE_CPU_SECONDS} s of CPU time and was stopped"
    if number == signal.SIGXFSZ:
        return f"{tool} wrote more than {PROBE_MESSAGE_BYTES} bytes of messages and was stopped"
    if number == signal.SIGKILL:
        return f"{tool} was killed (past its {PROBE_CPU_SECONDS} s of CPU time, or by the system when memory ran out)"
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    return f"{tool} was killed by {name}"


def _limit_child():
    """Runs in the child between fork and exec: only system calls, no locks taken."""
    _lower(resource.RLIMIT_CPU, PROBE_CPU_SECONDS, PROBE_CPU_SECONDS + 1)  # SIGXCPU, then SIGKILL
    _lower(resource.RLIMIT_AS, PROBE_MEMORY_MB * 1024 * 1024)
    _lower(resource.RLIMIT_FSIZE, PROBE_MESSAGE_BYTES)  # stderr is a file; stdout a pipe
    _lower(resource.RLIMIT_CORE, 0)  # a crash on a hostile file leaves no core dump


def _lower(kind, soft, hard=None):
    current_hard = resource.getrlimit(kind)[1]
    hard = soft if hard is None else hard
    if current_hard != resource.RLIM_INFINITY:
        soft, hard = min(soft, current_hard), min(hard, current_hard)
    resource.setrlimit(kind, (soft, hard))
