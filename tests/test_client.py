"""The Python upload client, ``stremora_client``: its pieces here, then against a real server."""

import io
import itertools
import json
import os
import secrets
import signal
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
from django.conf import settings as django_settings
from rest_framework.authtoken.models import Token

import stremora_client
from stremora_client.client import Client
from stremora_client.errors import describe_network_error, message_of
from stremora_client.progress import TerminalProgress, format_line, progress_for
from stremora_client.resume import FORGET_AFTER_SECONDS, ResumeState, default_state_path, upload_key
from stremora_client.transfer import S3MultipartSender, chunk_ranges, content_range, part_range, read_range
from tests.counting_proxy import CountingProxy
from tests.factories import sha256, video_bytes
from tests.fault_proxy import FaultProxy
from tests.stack import GunicornServer, site_environment, wait_until
from videos.models import UploadSession, Video

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


# Signing S3 parts ahead


class SigningRecorder:
    """The client's API as far as signing goes: records the part numbers asked for."""

    def __init__(self):
        self.asked = []

    def sign_parts(self, upload_id, numbers, checksums=None):
        self.asked.append(list(numbers))
        return [{"number": number, "url": f"https://s3.example/part-{number}"} for number in numbers]


def s3_sender(api, part_count, signed, parallel):
    upload = {
        "id": "an-upload",
        "target": {
            "method": "s3-multipart",
            "part_size": 8 * MIB,
            "part_count": part_count,
            "parts": [{"number": n, "url": f"https://s3.example/part-{n}"} for n in range(1, signed + 1)],
        },
    }
    return S3MultipartSender(api, upload, "unused.mp4", part_count * 8 * MIB, progress=None, parallel=parallel)


def test_the_next_parts_are_signed_while_the_parts_before_them_are_still_being_sent():
    api = SigningRecorder()
    sender = s3_sender(api, part_count=40, signed=16, parallel=4)

    assert sender._url_for(12).endswith("part-12")  # parts 12 to 16 are signed: no call
    assert api.asked == []
    assert sender._url_for(13).endswith("part-13")  # part 17 would be sent next among 13 to 17
    assert api.asked == [list(range(17, 33))]
    for number in range(14, 29):
        sender._url_for(number)
    assert len(api.asked) == 1  # up to part 28, parts 29 to 32 are signed
    sender._url_for(29)
    assert api.asked == [list(range(17, 33)), list(range(33, 41))]
    assert sender._url_for(40).endswith("part-40") and len(api.asked) == 2


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
    state.remember("another", "upload-2")
    state.forget(key)
    assert ResumeState(state.path).upload_id(key) is None
    assert ResumeState(state.path).upload_id("another") == "upload-2"
    state.forget("another")
    assert not state.path.exists()


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


def test_a_malformed_token_is_refused_without_being_echoed(tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"x" * 100)

    result = run_client("upload", str(video), "--title", "T", "--url", "http://127.0.0.1:1",
                        env={"STREMORA_TOKEN": "secret-token\nX-Injected: 1"})

    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "must be one word" in result.stderr and "secret-token" not in result.stderr


def test_a_missing_file_is_one_line(tmp_path):
    result = run_client("upload", str(tmp_path / "nowhere.mp4"), "--title", "T", "--url", "http://127.0.0.1:1",
                        "--token", "k")
    assert result.returncode == 1
    assert result.stderr == f"stremora_client: Cannot read {tmp_path / 'nowhere.mp4'}: No such file or directory\n"


# Against a real server: gunicorn on PostgreSQL, S3 on moto's server


BUCKET = "stremora-test"
PART = 8 * MIB  # the server's smallest S3 part


@pytest.fixture
def site(settings, media_root):
    """``site(providers, s3_url=...)``: Stremora served by gunicorn with those providers."""
    media_root.mkdir(parents=True, exist_ok=True)
    servers = []

    def start(providers="local", s3_url=None, cloudinary=None, **variables):
        environment = site_environment(
            secret_key=secrets.token_urlsafe(50),
            media_root=media_root,
            providers=providers,
            cloudinary=cloudinary,
            s3_url=s3_url,
            s3_settings=settings,
            bucket=BUCKET,
            STORAGE_TIMEOUT=5,
            **variables,
        )
        server = GunicornServer(environment, workers=2).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def token(user):
    return Token.objects.create(user=user).key


@pytest.fixture
def cache_home(tmp_path):
    """The client's cache folder (its resume state), this test's own."""
    return tmp_path / "cache"


def video_file(directory, size, name="clip.mp4"):
    path = Path(directory) / name
    path.write_bytes(video_bytes(size))
    return path


def client_command(path, url, *options):
    return [sys.executable, "-m", "stremora_client", "upload", str(path), "--url", url, *options]


def client_environment(token, cache_home):
    environment = {key: value for key, value in os.environ.items() if not key.startswith("STREMORA_")}
    environment.update(STREMORA_TOKEN=token, XDG_CACHE_HOME=str(cache_home))
    return environment


def stored_bytes(video):
    provider, _, key = video.file.name.partition(":")
    if provider == "s3":
        return s3_object(key)
    assert provider == "local", video.file.name
    return (Path(django_settings.MEDIA_ROOT) / key).read_bytes()


def s3_object(key):
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3", endpoint_url=django_settings.AWS_S3_ENDPOINT_URL, aws_access_key_id="testing",
        aws_secret_access_key="testing", region_name="us-east-1", config=Config(s3={"addressing_style": "path"}),
    )
    return client.get_object(Bucket=BUCKET, Key=f"stremora/{key}")["Body"].read()


@pytest.mark.django_db(transaction=True)
def test_a_client_killed_midway_resumes_and_sends_at_most_one_part_twice(s3_server, site, token, cache_home, tmp_path):
    part_count = 12
    path = video_file(tmp_path, part_count * PART - 1000)
    # Every part passes a counting proxy on its way to S3, slowed so that the kill lands midway.
    with CountingProxy("127.0.0.1", s3_server.port, delay=0.3) as proxy:
        server = site("s3", s3_url=proxy.url)
        environment = client_environment(token, cache_home)
        command = client_command(path, server.url, "--title", "Harbour", "--parallel", "2", "--quiet")

        first = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            wait_until(lambda: sum(proxy.parts_landed().values()) >= 3, 60, "three parts landing")
            first.send_signal(signal.SIGKILL)
        finally:
            first.kill()
            first.communicate(timeout=30)
        assert first.returncode == -signal.SIGKILL
        # What the dead client had sent is on S3 or dropped before the resume asks.
        wait_until(lambda: proxy.in_flight == 0, 30, "the killed client's requests ending")
        landed_before_the_kill = sum(proxy.parts_landed().values())
        assert landed_before_the_kill < part_count, "the kill came too late to cut the upload"

        second = subprocess.run(command + ["--resume"], cwd=ROOT, env=environment, capture_output=True, text=True,
                                timeout=120)

        assert second.returncode == 0, second.stderr
        landed = proxy.parts_landed()
    assert sorted(landed) == list(range(1, part_count + 1))
    sent_twice = [number for number, times in landed.items() if times > 1]
    assert len(sent_twice) <= 1 and max(landed.values()) <= 2, landed
    video = Video.objects.get()
    assert second.stdout.startswith(f"Video {video.pk} stored on s3: http")
    assert video.storage_provider == "s3" and video.size_bytes == path.stat().st_size
    assert sha256(stored_bytes(video)) == sha256(path.read_bytes())
    assert not (cache_home / "stremora" / "uploads.json").exists(), "the state of a completed upload is removed"


@pytest.mark.django_db(transaction=True)
def test_a_target_that_cannot_be_reached_moves_the_upload_to_the_next_provider(s3_server, site, token, tmp_path):
    path = video_file(tmp_path, 2 * PART + 12345)
    # S3 answers the server's own small calls, but every part is cut off on its way.
    with FaultProxy("127.0.0.1", s3_server.port) as s3_proxy:
        s3_proxy.set_mode("cut_after", bytes=256 * 1024)
        server = site("s3,local", s3_url=s3_proxy.url)
        reported = []

        video = stremora_client.upload(
            path, url=server.url, token=token, title="Harbour", description="From the pier",
            progress=lambda sent, total: reported.append(sent), state=ResumeState(tmp_path / "state.json"),
        )

    assert video["storage_provider"] == "local" and video["title"] == "Harbour"
    stored = Video.objects.get(pk=video["id"])
    assert stored.storage_provider == "local" and stored.description == "From the pier"
    assert sha256(stored_bytes(stored)) == sha256(path.read_bytes())
    assert reported[-1] == path.stat().st_size
    session = UploadSession.objects.get(video_id=video["id"])
    assert [attempt["provider"] for attempt in session.tried] == ["s3"]  # it went to S3 first
    assert s3_server.keys(BUCKET) == []


@pytest.mark.django_db(transaction=True)
def test_a_part_that_fails_once_is_sent_again_to_the_same_provider(s3_server, site, token, tmp_path):
    path = video_file(tmp_path, 3 * PART + 10)
    with CountingProxy("127.0.0.1", s3_server.port, fail_once={2}) as proxy:
        server = site("s3", s3_url=proxy.url)

        video = stremora_client.upload(path, url=server.url, token=token, title="Harbour", progress=False,
                                       state=ResumeState(tmp_path / "state.json"))

        put_answers = [(part, status) for method, _, part, status in proxy.requests if method == "PUT"]
    assert sorted(put_answers) == [(1, 200), (2, 200), (2, 500), (3, 200), (4, 200)]
    stored = Video.objects.get(pk=video["id"])
    assert stored.storage_provider == "s3" and UploadSession.objects.get(video=stored).tried == []
    assert sha256(stored_bytes(stored)) == sha256(path.read_bytes())


@pytest.mark.django_db(transaction=True)
def test_when_every_provider_fails_the_command_line_says_so_in_one_line(s3_server, site, token, cache_home, tmp_path):
    path = video_file(tmp_path, PART + 1)
    with FaultProxy("127.0.0.1", s3_server.port) as s3_proxy:
        s3_proxy.set_mode("cut_after", bytes=256 * 1024)
        server = site("s3", s3_url=s3_proxy.url)

        result = subprocess.run(
            client_command(path, server.url, "--title", "Harbour"), cwd=ROOT, capture_output=True, text=True,
            env=client_environment(token, cache_home), timeout=120,
        )

    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("stremora_client: No storage provider could take the upload (s3: S3 part 1: ")
    assert "Signature" not in result.stderr and token not in result.stderr
    assert not Video.objects.exists()
    assert not (cache_home / "stremora" / "uploads.json").exists()


@pytest.mark.django_db(transaction=True)
def test_each_part_goes_to_s3_with_its_crc32_signed_into_its_url(s3_server, site, token, tmp_path):
    path = video_file(tmp_path, 2 * PART + 12345)
    with CountingProxy("127.0.0.1", s3_server.port) as proxy:
        server = site("s3", s3_url=proxy.url)
        video = stremora_client.upload(
            path, url=server.url, token=token, title="Checked", progress=False, state=ResumeState(tmp_path / "state.json")
        )

    assert sorted(part for part, *_ in proxy.part_checksums) == [1, 2, 3]
    for part, sent, matches, signed in proxy.part_checksums:
        assert sent and matches, f"part {part} went with {sent!r}"
        assert "x-amz-checksum-crc32" in signed.split(";"), signed
    stored = Video.objects.get(pk=video["id"])
    assert sha256(stored_bytes(stored)) == sha256(path.read_bytes())


@pytest.mark.django_db(transaction=True)
def test_a_start_refused_for_an_outage_is_said_at_once_with_the_time_to_try_again(s3_server, site, token, tmp_path):
    path = video_file(tmp_path, 100_000)
    with FaultProxy("127.0.0.1", s3_server.port) as s3_proxy:
        s3_proxy.set_mode("refuse")
        server = site("s3", s3_url=s3_proxy.url, STORAGE_BREAKER_COOLDOWN=60)
        began = time.monotonic()
        with pytest.raises(stremora_client.ServerRefused) as refused:
            stremora_client.upload(
                path, url=server.url, token=token, title="Harbour", progress=False,
                state=ResumeState(tmp_path / "state.json"),
            )
        took = time.monotonic() - began

    # Not asked again and again for two minutes: a cool-down of 60 s is an outage.
    assert refused.value.status == 503 and refused.value.retry_after == "60"
    assert "(retry after 60 s)" in str(refused.value)
    assert took < 30
    assert not UploadSession.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_replace_gives_an_existing_video_the_new_file(site, token, cache_home, tmp_path):
    server = site("local")
    first = video_file(tmp_path, 100_000, "first.mp4")
    second = video_file(tmp_path, 3 * 1024 * 1024, "second.mp4")
    original = stremora_client.upload(first, url=server.url, token=token, title="Harbour", progress=False,
                                      state=ResumeState(tmp_path / "state.json"))

    result = subprocess.run(
        client_command(second, server.url, "--title", "Harbour", "--replace", str(original["id"])),
        cwd=ROOT, capture_output=True, text=True, env=client_environment(token, cache_home), timeout=120,
    )

    assert result.returncode == 0, result.stderr
    video = Video.objects.get()
    assert video.pk == original["id"] and result.stdout.startswith(f"Video {video.pk} stored on local: ")
    assert sha256(stored_bytes(video)) == sha256(second.read_bytes())


@pytest.mark.django_db(transaction=True)
def test_the_server_refusing_the_file_is_one_line(site, token, cache_home, tmp_path):
    server = site("local")
    notes = tmp_path / "notes.txt"
    notes.write_text("not a video")

    result = subprocess.run(
        client_command(notes, server.url, "--title", "Notes"), cwd=ROOT, capture_output=True, text=True,
        env=client_environment(token, cache_home), timeout=60,
    )

    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("stremora_client: the server refused the upload (400): ")
    assert not Video.objects.exists()


def interrupted_after_a_chunk_then_resumed(server, token, path, state):
    """Uploads ``path``, stops it once a chunk is sent, then resumes it: ``(video, what
    the resumed upload reported as sent, step by step)``."""
    def interrupt_after_a_chunk(sent, total):
        if sent > 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        stremora_client.upload(path, url=server.url, token=token, title="Harbour", progress=interrupt_after_a_chunk,
                               state=state)
    reported = []
    video = stremora_client.upload(path, url=server.url, token=token, title="Harbour", resume=True,
                                   progress=lambda sent, total: reported.append(sent), state=state)
    return video, reported


@pytest.mark.django_db(transaction=True)
def test_an_interrupted_local_upload_resumes_from_the_bytes_the_server_holds(site, token, tmp_path):
    server = site("local")
    path = video_file(tmp_path, 20 * MIB + 7)
    state = ResumeState(tmp_path / "state.json")

    video, reported = interrupted_after_a_chunk_then_resumed(server, token, path, state)

    assert reported[0] == 8 * MIB  # the first chunk was not sent again
    assert reported[-1] == path.stat().st_size
    assert sha256(stored_bytes(Video.objects.get(pk=video["id"]))) == sha256(path.read_bytes())
    assert state.upload_id(upload_key(server.url, path)) is None


@pytest.mark.django_db(transaction=True)
def test_an_interrupted_cloudinary_upload_sends_every_chunk_again_and_lands_whole(cloudinary_server, site, token,
                                                                                  tmp_path):
    server = site("cloudinary", cloudinary=cloudinary_server)
    path = video_file(tmp_path, 25 * 1000 * 1000)  # two chunks of Cloudinary's 20 MB
    state = ResumeState(tmp_path / "state.json")

    video, reported = interrupted_after_a_chunk_then_resumed(server, token, path, state)

    assert reported == [0, 20 * 1000 * 1000, path.stat().st_size]  # Cloudinary cannot say what it holds
    assert video["storage_provider"] == "cloudinary"
    [(_, public_id)] = cloudinary_server.resources("video")
    assert sha256(cloudinary_server.content(public_id)) == sha256(path.read_bytes())


@pytest.mark.django_db(transaction=True)
def test_an_upload_the_server_no_longer_knows_starts_over(site, token, tmp_path):
    server = site("local")
    path = video_file(tmp_path, 100_000)
    state = ResumeState(tmp_path / "state.json")
    state.remember(upload_key(server.url, path), str(uuid.uuid4()))

    video = stremora_client.upload(path, url=server.url, token=token, title="Harbour", resume=True, progress=False,
                                   state=state)

    assert sha256(stored_bytes(Video.objects.get(pk=video["id"]))) == sha256(path.read_bytes())


PEAK_MEMORY_OF_A_CHILD = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def peak_memory_kib(command, environment):
    """The peak resident memory of ``command``, as the kernel counted it."""
    result = subprocess.run([sys.executable, "-c", PEAK_MEMORY_OF_A_CHILD, *command], cwd=ROOT, env=environment,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return int(result.stdout)


@pytest.mark.django_db(transaction=True)
def test_memory_stays_at_a_few_parts_whatever_the_files_size(s3_server, site, token, cache_home, tmp_path):
    server = site("s3", s3_url=s3_server.url)
    environment = client_environment(token, cache_home)
    small, large = video_file(tmp_path, MIB, "small.mp4"), video_file(tmp_path, 12 * PART, "large.mp4")

    baseline = peak_memory_kib(client_command(small, server.url, "--title", "Small", "--parallel", "2"), environment)
    peak = peak_memory_kib(client_command(large, server.url, "--title", "Large", "--parallel", "2"), environment)

    # Two parts in flight and one being read: about 24 MiB over the baseline, never the 96 MiB file.
    assert (peak - baseline) * 1024 <= 3 * PART, f"{baseline} KiB for 1 MiB, {peak} KiB for 96 MiB"
    assert Video.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_replacing_a_video_that_does_not_exist_is_refused_before_any_byte_is_sent(site, token, cache_home, tmp_path):
    server = site("local")
    path = video_file(tmp_path, 100_000)

    result = subprocess.run(
        client_command(path, server.url, "--title", "Harbour", "--replace", "999999"), cwd=ROOT, capture_output=True,
        text=True, env=client_environment(token, cache_home), timeout=60,
    )

    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("stremora_client: the server refused the upload (404): ")
    assert not UploadSession.objects.exists() and not Video.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_server_completes_the_upload_in_the_background_while_the_client_waits(
    s3_server, site, token, tmp_path, monkeypatch
):
    path = video_file(tmp_path, 2 * PART + 10)
    server = site("s3", s3_url=s3_server.url)
    # The completed upload's answer carries the video: the client asks for nothing more.
    monkeypatch.setattr(Client, "video", lambda *_: pytest.fail("the client asked for the video again"))

    video = stremora_client.upload(path, url=server.url, token=token, title="Harbour", progress=False,
                                   state=ResumeState(tmp_path / "state.json"))

    session = UploadSession.objects.get(video_id=video["id"])
    assert session.status == "completed" and session.completion["fields"]["title"] == "Harbour"  # asked to complete later
    assert video["title"] == "Harbour" and video["storage_provider"] == "s3"
    assert sha256(stored_bytes(Video.objects.get(pk=video["id"]))) == sha256(path.read_bytes())


@pytest.mark.django_db(transaction=True)
def test_from_a_server_that_names_the_completed_video_only_the_client_asks_for_it(
    s3_server, site, token, tmp_path, monkeypatch
):
    path = video_file(tmp_path, PART + 10)
    server = site("s3", s3_url=s3_server.url)
    describe_upload = Client.describe_upload

    def as_an_older_server_answers(self, upload_id):
        upload = describe_upload(self, upload_id)
        del upload["completed_video"]
        return upload

    monkeypatch.setattr(Client, "describe_upload", as_an_older_server_answers)

    video = stremora_client.upload(path, url=server.url, token=token, title="Older", progress=False,
                                   state=ResumeState(tmp_path / "state.json"))

    assert video["title"] == "Older" and video["storage_provider"] == "s3" and video["video_url"]
    assert sha256(stored_bytes(Video.objects.get(pk=video["id"]))) == sha256(path.read_bytes())


@pytest.mark.django_db(transaction=True)
def test_the_client_asks_first_after_the_time_the_server_said_the_completion_takes(
    s3_server, site, token, tmp_path, monkeypatch
):
    from django.core.cache.backends.filebased import FileBasedCache

    from videos import completion_times

    path = video_file(tmp_path, 2 * PART + 10)
    shared_cache = tmp_path / "cache"
    server = site("s3", s3_url=s3_server.url, CACHE_URL=f"filecache://{shared_cache}")
    # What the server learned from an earlier upload: this one should take it 2.2 s.
    FileBasedCache(str(shared_cache), {}).set(completion_times._key("s3"), [(2.2, path.stat().st_size)], 60)
    answered, asked = {}, []
    request, describe_upload = Client._request, Client.describe_upload

    def noting_the_answer(self, method, path, *args, **kwargs):
        response = request(self, method, path, *args, **kwargs)
        if path.endswith("/complete/"):
            answered.update(at=time.monotonic(), retry_after=response.json()["retry_after"])
        return response

    def noting_the_question(self, upload_id):
        asked.append(time.monotonic())
        return describe_upload(self, upload_id)

    monkeypatch.setattr(Client, "_request", noting_the_answer)
    monkeypatch.setattr(Client, "describe_upload", noting_the_question)

    video = stremora_client.upload(path, url=server.url, token=token, title="Hinted", progress=False,
                                   state=ResumeState(tmp_path / "state.json"))

    assert 1.2 < answered["retry_after"] <= 2.2 and video["title"] == "Hinted"  # 2.2 s, less the moments since
    assert asked and asked[0] - answered["at"] >= answered["retry_after"]


def scripted_client(monkeypatch, answers):
    """A client whose questions on an upload being completed get ``answers`` in turn,
    and whose pauses are recorded instead of waited."""
    from stremora_client import client

    pauses = []
    monkeypatch.setattr(client.time, "sleep", pauses.append)
    api = Client("http://stremora.invalid", "a-token")
    monkeypatch.setattr(api, "describe_upload", lambda upload_id: answers.pop(0))
    return api, pauses


def test_the_client_waits_as_long_as_each_answer_says_then_at_its_own_pace(monkeypatch):
    from stremora_client import client

    video = {"id": 7, "title": "Harbour"}
    api, pauses = scripted_client(monkeypatch, [
        {"status": "completing", "retry_after": 0.35},
        {"status": "completing", "retry_after": None},  # the server cannot tell any more
        {"status": "completing"},  # nor can an older one
        {"status": "completed", "video": 7, "completed_video": video},
    ])

    assert api.await_completion("an-upload", retry_after=1.25) == video
    assert pauses == [1.25, 0.35, client.COMPLETION_POLL, client.COMPLETION_POLL]


def test_a_wait_the_server_asks_for_is_at_most_a_minute(monkeypatch):
    from stremora_client import client

    api, pauses = scripted_client(monkeypatch, [{"status": "completed", "completed_video": {"id": 7}}])

    api.await_completion("an-upload", retry_after=3600)
    assert pauses == [client.COMPLETION_HINT_MAX] == [60]


def test_a_whole_second_retry_after_counts_only_without_the_precise_one():
    from stremora_client.client import retry_after_of

    assert retry_after_of({"retry_after": 0.85}, answer(202, {})) == 0.85
    with_header = answer(202, {})
    with_header.headers["Retry-After"] = "2"
    assert retry_after_of({"retry_after": 0.85}, with_header) == 0.85
    assert retry_after_of({}, with_header) == 2.0
    assert retry_after_of({"retry_after": "soon"}, with_header) == 2.0
    assert retry_after_of({}) is None


def test_while_the_server_completes_the_client_asks_often_at_first_then_less_and_less():
    from stremora_client import client

    delays = list(client.completion_poll_delays())
    waited_before = [0.0, *itertools.accumulate(delays)]

    # The first seconds: an answer is never more than one short pause late.
    quick = [delay for delay, waited in zip(delays, waited_before) if waited < client.COMPLETION_QUICK]
    assert set(quick) == {client.COMPLETION_POLL} and client.COMPLETION_POLL <= 0.2
    # Then each pause longer than the last, up to the cap, and never past the wait.
    later = delays[len(quick):]
    assert later == sorted(later) and later[0] > client.COMPLETION_POLL and max(later) == client.COMPLETION_POLL_MAX
    assert client.COMPLETION_WAIT <= sum(delays) < client.COMPLETION_WAIT + client.COMPLETION_POLL_MAX
    assert len(delays) < client.COMPLETION_WAIT / client.COMPLETION_POLL_MAX + 30
