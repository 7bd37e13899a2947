"""Request bodies against the real gunicorn: who may send one, how large, how slowly, how whole.

A body is read only when its caller may send it (a video upload by an allowed caller;
anything else only up to DATA_UPLOAD_MAX_MEMORY_SIZE, refused unread beyond), a body
slower than the floor rate is cut off, and one without a correct length is refused; in
no case is anything stored.
"""

import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from tests.factories import MP4_HEADER
from tests.stack import GunicornServer, site_environment, wait_until
from videos.models import Video

pytestmark = pytest.mark.django_db(transaction=True)

BUCKET = "stremora-test"
WORKERS = 3
BODY_TIMEOUT = 2  # REQUEST_BODY_TIMEOUT of the server under test
MIN_RATE_KB = 64  # REQUEST_BODY_MIN_RATE_KB of the server under test
# After answering, gunicorn lingers up to 2 s reading what the client still sends
# (gunicorn.util.close_graceful) before it closes the connection.
GUNICORN_LINGER = 2.0
HUGE = 300 * 1024 * 1024
BOUNDARY = "stremorabodies"


@dataclass
class Server:
    site: GunicornServer
    temp_dir: Path
    media_root: Path
    cloudinary: object
    s3: object

    def stored_names(self):
        """Every file any provider holds."""
        names = {f"cloudinary:{record}" for record in self.cloudinary.resources()}
        names |= {f"s3:{key}" for key in self.s3.keys(BUCKET)}
        names |= {f"local:{path}" for path in self.media_root.rglob("*") if path.is_file()}
        return names

    def temp_files(self):
        return sorted(str(path) for path in self.temp_dir.rglob("*") if path.is_file())


@pytest.fixture
def server(settings, cloudinary_server, s3_server, media_root, tmp_path):
    """gunicorn over all three providers, its temporary files (Django's spooled uploads) in a folder of ours."""
    media_root.mkdir(parents=True, exist_ok=True)
    temp_dir = tmp_path / "server-tmp"
    temp_dir.mkdir()
    settings.STORAGE_PROVIDERS = ["cloudinary", "s3", "local"]
    environment = site_environment(
        secret_key=settings.SECRET_KEY,  # the test signs the sessions it hands to the server
        media_root=media_root,
        providers="cloudinary,s3,local",
        cloudinary=cloudinary_server,
        s3_url=s3_server.url,
        s3_settings=settings,
        bucket=BUCKET,
        TMPDIR=temp_dir,
        STORAGE_TIMEOUT=5,
        REQUEST_BODY_TIMEOUT=BODY_TIMEOUT,
        REQUEST_BODY_MIN_RATE_KB=MIN_RATE_KB,
    )
    # --timeout far above every bound below: gunicorn killing a stuck worker must not be what frees it.
    with GunicornServer(environment, workers=WORKERS, timeout=300) as site:
        yield Server(site, temp_dir, media_root, cloudinary_server, s3_server)


@pytest.fixture
def token(user):
    return Token.objects.create(user=user).key


# -- raw HTTP ----------------------------------------------------------------------


def connect(site):
    return socket.create_connection(("127.0.0.1", site.port), timeout=10)


def head(method, path, headers=(), length=None):
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", *(f"{n}: {v}" for n, v in headers)]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def read_response(sock, timeout):
    """``(status, body)`` of the answer on ``sock``; status 0 when none came within ``timeout`` seconds."""
    sock.settimeout(timeout)
    chunks = []
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    except (TimeoutError, ConnectionResetError):
        pass
    response = b"".join(chunks)
    if not response.startswith(b"HTTP/"):
        return 0, b""
    return int(response.split()[1]), response.partition(b"\r\n\r\n")[2]


def read_response_head(sock, timeout):
    """The status of the answer on ``sock``, read without waiting for the connection to close (0: none)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return int(data.split()[1]) if data.startswith(b"HTTP/") else 0


def file_part_head(name="clip.mp4"):
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="title"\r\n\r\nSlow\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: video/mp4\r\n\r\n"
    ).encode()


def upload_body(size=50_000):
    return file_part_head() + MP4_HEADER + os.urandom(size) + f"\r\n--{BOUNDARY}--\r\n".encode()


MULTIPART = ("Content-Type", f"multipart/form-data; boundary={BOUNDARY}")


def trickle(sockets, stop, every=1.0):
    """One byte on each socket every ``every`` seconds until ``stop`` is set, as the attacker did."""
    while not stop.wait(every):
        for sock in sockets:
            try:
                sock.send(b"x")
            except OSError:
                pass


def health_seconds(site):
    sock = connect(site)
    started = time.monotonic()
    try:
        sock.sendall(head("GET", "/api/health/"))
        status, _ = read_response(sock, timeout=10)
    finally:
        sock.close()
    assert status in (200, 503)
    return time.monotonic() - started


# (path, status) of addresses an anonymous caller may not send a large body to.
ANONYMOUS_TARGETS = [
    ("/", 413),
    ("/videos/1/", 413),
    ("/admin/login/", 413),
    ("/api/auth/token/", 413),
    ("/api/videos/", 401),
    ("/admin/videos/video/add/", 403),
]


# -- slow and huge anonymous bodies --------------------------------------------------


def test_slow_anonymous_bodies_on_every_worker_leave_the_site_answering(server):
    """As attacked: one connection per worker, a large Content-Length, a byte now and then; to every such address."""
    stop, sockets, statuses, latencies = threading.Event(), [], {}, []
    try:
        for path, _ in ANONYMOUS_TARGETS:
            for _ in range(WORKERS):
                sock = connect(server.site)
                sock.sendall(head("POST", path, [MULTIPART], length=100_000_000) + file_part_head()[:20])
                sockets.append(sock)
                statuses.setdefault(path, set()).add(read_response_head(sock, timeout=5))
        threading.Thread(target=trickle, args=(sockets, stop), daemon=True).start()

        assert statuses == {path: {expected} for path, expected in ANONYMOUS_TARGETS}
        # Each worker may still linger after its last answer; then none may be held.
        time.sleep(GUNICORN_LINGER + 0.5)
        for _ in range(10):
            latencies.append(health_seconds(server.site))
            time.sleep(0.3)
    finally:
        stop.set()
        for sock in sockets:
            sock.close()

    assert max(latencies) < 1.0, latencies
    assert server.temp_files() == []


@pytest.mark.parametrize("path", ["/", "/api/auth/token/", "/api/videos/", "/admin/videos/video/add/"])
def test_an_anonymous_huge_body_is_refused_unread_and_writes_nothing_to_disk(server, path):
    sock = connect(server.site)
    sock.sendall(head("POST", path, [MULTIPART], length=HUGE) + file_part_head() + MP4_HEADER)
    sent, temp_files_seen = [0], set()

    def push():
        block = bytes(1024 * 1024)
        try:
            while sent[0] < HUGE:
                sock.sendall(block)
                sent[0] += len(block)
        except OSError:
            pass

    answer = []
    reader = threading.Thread(target=lambda: answer.append(read_response(sock, timeout=60)), daemon=True)
    pusher = threading.Thread(target=push, daemon=True)
    reader.start()
    pusher.start()
    deadline = time.monotonic() + 60
    while (pusher.is_alive() or reader.is_alive()) and time.monotonic() < deadline:
        temp_files_seen.update(server.temp_files())
        time.sleep(0.02)
    sock.close()
    status, body = answer[0] if answer else (0, b"")

    assert status in (401, 403, 413), (status, body)
    assert temp_files_seen == set() and server.temp_files() == []
    # The server stopped taking the body: what got in is what the sockets' buffers hold, not 300 MB.
    assert sent[0] < 64 * 1024 * 1024


# -- slow bodies of allowed callers --------------------------------------------------


def floor_deadline(received):
    """Seconds the server grants a body after ``received`` bytes (REQUEST_BODY_TIMEOUT plus the floor rate)."""
    return BODY_TIMEOUT + received / (MIN_RATE_KB * 1024)


@pytest.mark.parametrize("case", ["upload with a token", "anonymous token request"])
def test_a_body_slower_than_the_floor_rate_is_cut_off_and_stores_nothing(server, token, case):
    if case == "upload with a token":
        start = file_part_head() + MP4_HEADER + os.urandom(200_000)
        request = head("POST", "/api/videos/", [("Authorization", f"Token {token}"), MULTIPART], length=5_000_000)
    else:
        start = b'{"username": "viewer", "password": "'
        request = head("POST", "/api/auth/token/", [("Content-Type", "application/json")], length=1000)
    files, rows = server.stored_names(), Video.objects.count()
    stop = threading.Event()
    sock = connect(server.site)
    started = time.monotonic()
    sock.sendall(request + start)
    threading.Thread(target=trickle, args=([sock], stop, 0.5), daemon=True).start()
    try:
        status, body = read_response(sock, timeout=floor_deadline(len(start)) + 10)
    finally:
        stop.set()
        sock.close()
    elapsed = time.monotonic() - started

    assert status == 408, (status, body, server.site.log()[-2000:])
    assert b"too slowly" in body
    # Cut off when the floor was missed, not later: the trickle adds only a few bytes.
    assert floor_deadline(len(start)) - 0.5 < elapsed < floor_deadline(len(start)) + 3
    assert Video.objects.count() == rows and server.stored_names() == files
    wait_until(lambda: server.temp_files() == [], 5, "the spooled part of the upload removed")
    assert health_seconds(server.site) < 1.0


# -- bodies without a correct length -------------------------------------------------


def test_a_chunked_upload_is_refused_with_411_and_stores_nothing(server, token):
    body = upload_body()
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(body[i : i + 8192]), body[i : i + 8192]) for i in range(0, len(body), 8192))
    sock = connect(server.site)
    sock.sendall(
        head("POST", "/api/videos/", [("Authorization", f"Token {token}"), MULTIPART, ("Transfer-Encoding", "chunked")])
        + chunked
        + b"0\r\n\r\n"
    )
    status, answer = read_response(sock, timeout=10)
    sock.close()

    assert status == 411, answer
    assert b"Content-Length" in answer and b"No file was submitted" not in answer
    assert Video.objects.count() == 0 and server.stored_names() == set()


@pytest.mark.parametrize("client_gives_up", ["half-closes and waits", "closes"])
def test_a_body_shorter_than_its_content_length_stores_nothing(server, token, client_gives_up):
    body = upload_body()
    sock = connect(server.site)
    sock.sendall(head("POST", "/api/videos/", [("Authorization", f"Token {token}"), MULTIPART], length=len(body) + 1000) + body)
    if client_gives_up == "closes":
        time.sleep(0.5)
        sock.close()
        wait_until(lambda: "closed before the request body was complete" in server.site.log(), 10, "the short body refused")
    else:
        sock.shutdown(socket.SHUT_WR)
        status, answer = read_response(sock, timeout=10)
        sock.close()
        assert status == 400, answer
        assert b"closed before the request body was complete" in answer

    assert Video.objects.count() == 0 and server.stored_names() == set()
    assert server.temp_files() == []


# -- the admin: staff and CSRF before a large body ---------------------------------------


def session_headers(user, csrf_header=True):
    """The cookies of a session of ``user`` (and its CSRF token in the header) for raw requests to gunicorn."""
    client = Client()
    client.force_login(user)
    csrf_token = secrets.token_hex(16)  # an unmasked 32-character secret, as the csrftoken cookie holds
    cookies = f"sessionid={client.cookies['sessionid'].value}; csrftoken={csrf_token}"
    headers = [("Cookie", cookies), ("Origin", "http://127.0.0.1")]
    return headers + ([("X-CSRFToken", csrf_token)] if csrf_header else [])


def admin_add_body(staff_user, size):
    fields = {"description": "", "owner": str(staff_user.pk), "_save": "Save"}  # the title comes with the file
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    return b"".join(parts) + upload_body(size)


CALLERS_NOT_ALLOWED = [
    "admin: staff without the CSRF header",
    "admin: signed-in user not staff",
    "API: session without the CSRF header",
    "API: a made-up token",
    "API: another user's token replacing my video",
]


@pytest.mark.parametrize("who", CALLERS_NOT_ALLOWED)
def test_a_large_upload_from_a_caller_not_allowed_is_refused_unread(server, staff_user, user, token, who):
    path, method = "/admin/videos/video/add/", "POST"
    if who == "admin: staff without the CSRF header":
        headers = session_headers(staff_user, csrf_header=False)
    elif who == "admin: signed-in user not staff":
        headers = session_headers(user)
    elif who == "API: session without the CSRF header":
        path, headers = "/api/videos/", session_headers(user, csrf_header=False)
    elif who == "API: a made-up token":
        path, headers = "/api/videos/", [("Authorization", "Token " + "0" * 40)]
    else:
        video = Video.objects.create(title="Mine", owner=staff_user, is_published=True, file="local:videos/mine.mp4")
        path, method, headers = f"/api/videos/{video.pk}/", "PATCH", [("Authorization", f"Token {token}")]
    rows = Video.objects.count()
    sock = connect(server.site)
    sock.sendall(head(method, path, [*headers, MULTIPART], length=HUGE) + file_part_head())
    status, answer = read_response(sock, timeout=10)
    sock.close()

    assert status in (401, 403), answer
    assert server.temp_files() == [] and Video.objects.count() == rows


def test_a_large_admin_upload_by_staff_with_the_csrf_header_is_stored(server, staff_user):
    body = admin_add_body(staff_user, 4 * 1024 * 1024)
    sock = connect(server.site)
    sock.sendall(head("POST", "/admin/videos/video/add/", [*session_headers(staff_user), MULTIPART], length=len(body)) + body)
    status, answer = read_response(sock, timeout=30)
    sock.close()

    assert status == 302, answer
    video = Video.objects.get()
    assert video.size_bytes == len(MP4_HEADER) + 4 * 1024 * 1024
