"""The Python upload client, ``stremora_client``: its pieces here, then against a real server."""

import io
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from stremora_client.errors import describe_network_error, message_of
from stremora_client.progress import TerminalProgress, format_line, progress_for
from stremora_client.resume import FORGET_AFTER_SECONDS, ResumeState, default_state_path, upload_key
from stremora_client.transfer import chunk_ranges, content_range, part_range, read_range

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024


class Terminal(io.StringIO):
    def isatty(self):
        return True


# Part and chunk ranges


@pytest.mark.parametrize("size", [1, 8 * MIB - 1, 8 * MIB, 8 * MIB + 1, 100 * MIB + 12345])
def test_the_parts_cover_the_file_exactly_once_in_order(size):
    part_size = 8 * MIB
    part_count = -(-size // part_size)

    ranges = [part_range(number, part_size, size) for number in range(1, part_count + 1)]

    assert ranges[0][0] == 0
    for (offset, length), (next_offset, _) in zip(ranges, ranges[1:]):
        assert length == part_size and offset + length == next_offset
    last_offset, last_length = ranges[-1]
    assert 0 < last_length <= part_size and last_offset + last_length == size


def test_a_part_outside_the_file_is_refused():
    with pytest.raises(ValueError):
        part_range(0, 8 * MIB, 20 * MIB)
    with pytest.raises(ValueError):
        part_range(4, 8 * MIB, 24 * MIB)  # three parts exactly


def test_chunks_start_where_the_server_left_off_and_end_at_the_last_byte():
    assert chunk_ranges(0, 10, 25) == [(0, 10), (10, 10), (20, 5)]
    assert chunk_ranges(10, 10, 25) == [(10, 10), (20, 5)]
    assert chunk_ranges(25, 10, 25) == []
    assert [content_range(offset, length, 25) for offset, length in chunk_ranges(12, 10, 25)] == [
        "bytes 12-21/25",
        "bytes 22-24/25",
    ]


def test_a_part_is_read_from_its_range_only(tmp_path):
    path = tmp_path / "clip.mp4"
    data = os.urandom(3 * 1000 + 7)
    path.write_bytes(data)

    assert read_range(path, 1000, 1000) == data[1000:2000]
    assert read_range(path, 3000, 7) == data[3000:]


# The resume state file


def test_the_state_file_remembers_an_upload_by_server_and_file_until_forgotten(tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"x" * 100)
    state = ResumeState(tmp_path / "state" / "uploads.json")
    key = upload_key("http://videos.example/", video)

    assert state.upload_id(key) is None
    state.remember(key, "7b0e5f3c-upload")

    assert ResumeState(state.path).upload_id(key) == "7b0e5f3c-upload"  # read back from the file
    assert ResumeState(state.path).upload_id(upload_key("http://other.example", video)) is None
    assert stat.S_IMODE(state.path.stat().st_mode) == 0o600
    state.forget(key)
    assert ResumeState(state.path).upload_id(key) is None


def test_a_file_changed_since_is_a_new_upload(tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"x" * 100)
    before = upload_key("http://videos.example", video)

    video.write_bytes(b"y" * 101)
    assert upload_key("http://videos.example", video) != before
    os.utime(video, ns=(time.time_ns(), time.time_ns() + 10**9))
    video.write_bytes(b"y" * 101)
    same_size = upload_key("http://videos.example", video)
    os.utime(video, ns=(time.time_ns(), time.time_ns() + 5 * 10**9))
    assert upload_key("http://videos.example", video) != same_size


def test_an_unreadable_state_file_means_nothing_to_resume_and_is_rewritten(tmp_path):
    path = tmp_path / "uploads.json"
    path.write_text("{half a file")
    state = ResumeState(path)

    assert state.upload_id("any") is None
    state.remember("key", "upload-1")
    assert json.loads(path.read_text())["key"]["upload"] == "upload-1"


def test_entries_older_than_a_month_are_dropped(tmp_path):
    path = tmp_path / "uploads.json"
    old = int(time.time()) - FORGET_AFTER_SECONDS - 60
    path.write_text(json.dumps({"old": {"upload": "upload-0", "saved_at": old}}))

    ResumeState(path).remember("new", "upload-1")

    assert set(json.loads(path.read_text())) == {"new"}


def test_the_state_file_lives_in_the_users_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_state_path() == tmp_path / "cache" / "stremora" / "uploads.json"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_state_path() == tmp_path / "home" / ".cache" / "stremora" / "uploads.json"


# Progress


def test_the_progress_line_shows_the_share_the_bytes_and_the_rate():
    assert format_line(64 * MIB, 256 * MIB, 2.0) == (
        " 25% [#######.......................] 64.0/256.0 MiB 32.0 MiB/s"
    )
    assert format_line(256 * MIB, 256 * MIB, 4.0, sent_this_run=128 * MIB).endswith("256.0/256.0 MiB 32.0 MiB/s")


def test_a_terminal_gets_one_line_redrawn_in_place_then_a_newline():
    screen = Terminal()
    progress = progress_for(True, 4 * MIB, stream=screen)
    assert isinstance(progress, TerminalProgress)

    progress.restart(0)
    for _ in range(4):
        progress.add(MIB)
    progress.finish()

    output = screen.getvalue()
    assert output.endswith("\n") and output.count("\n") == 1
    lines = output.rstrip("\n").split("\r")[1:]
    assert lines[0].startswith("  0% [") and lines[-1].startswith("100% [##############################] 4.0/4.0 MiB")


def test_no_bar_when_stderr_is_not_a_terminal_or_progress_is_off():
    log = io.StringIO()
    for option in (True, False):
        progress = progress_for(option, 10, stream=log)
        progress.restart(0)
        progress.add(10)
        progress.finish()
    assert log.getvalue() == ""


def test_a_program_gets_each_step_through_its_callable():
    calls = []
    progress = progress_for(lambda sent, total: calls.append((sent, total)), 30, stream=Terminal())

    progress.restart(10)  # a resumed upload: 10 bytes already there
    progress.add(15)
    progress.add(5)

    assert calls == [(10, 30), (25, 30), (30, 30)]


# Messages


def test_a_network_error_names_the_host_and_never_the_presigned_url():
    url = (
        "http://127.0.0.1:9000/bucket/videos/clip.mp4?uploadId=abc&partNumber=3"
        "&X-Amz-Credential=AKIAEXAMPLE%2F20261201&X-Amz-Signature=0123456789abcdef"
    )
    with pytest.raises(requests.ConnectionError) as raised:
        requests.put(url.replace(":9000", f":{closed_port()}"), data=b"x", timeout=2)

    message = describe_network_error(raised.value, url)

    assert message == "connection to 127.0.0.1:9000 refused"
    assert "Signature" in str(raised.value)  # what requests would have said


def test_error_answers_read_as_one_line():
    assert message_of(answer(400, {"detail": "Not a video:\n  clip.txt"})) == "Not a video: clip.txt"
    assert message_of(answer(400, {"filename": ["Not a video file."], "size": ["Must be positive."]})) == (
        "filename: Not a video file.; size: Must be positive."
    )
    assert message_of(answer(400, {"non_field_errors": ["Parts are missing."]})) == "Parts are missing."
    assert message_of(answer(400, {"error": {"message": "Invalid Signature abc"}})) == "Invalid Signature abc"
    assert message_of(answer(502, None)) == "HTTP 502 Bad Gateway"


def closed_port():
    from tests.s3_server import free_port

    return free_port()


def answer(status, body):
    response = requests.Response()
    response.status_code = status
    response.reason = requests.status_codes._codes[status][0].replace("_", " ").title()
    response._content = b"<html>" if body is None else json.dumps(body).encode()
    return response


# The command line, without a server


def run_client(*arguments, env=None, timeout=120):
    environment = {key: value for key, value in os.environ.items() if not key.startswith("STREMORA_")}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "stremora_client", *arguments],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=timeout,
    )


def test_the_command_line_says_in_one_line_when_the_server_is_unreachable(tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"x" * 100)

    result = run_client("upload", str(video), "--title", "T", "--url", f"http://127.0.0.1:{closed_port()}",
                        "--token", "secret-token-value", env={"XDG_CACHE_HOME": str(tmp_path)})

    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "could not be reached" in result.stderr and "secret-token-value" not in result.stderr


def test_the_command_line_needs_a_server_and_a_token(tmp_path):
    result = run_client("upload", str(tmp_path / "clip.mp4"), "--title", "T")
    assert result.returncode == 2 and "--url and --token are needed" in result.stderr


def test_a_missing_file_is_one_line(tmp_path):
    result = run_client("upload", str(tmp_path / "nowhere.mp4"), "--title", "T", "--url", "http://127.0.0.1:1",
                        "--token", "k")
    assert result.returncode == 1
    assert result.stderr == f"stremora_client: Cannot read {tmp_path / 'nowhere.mp4'}: No such file or directory\n"
