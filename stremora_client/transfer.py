"""Sending a file's bytes to an upload's target, one module-level sender per ``target.method``.

Every sender reads only the range it is about to send (``os.pread``), so memory stays
at about one part or chunk per request in flight whatever the file's size. A request
that fails on the network or with a 5xx is tried once more after a short pause; if it
fails again the sender raises ``TargetFailed`` and the caller moves to the next provider.
"""

import base64
import os
import re
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor, as_completed
from urllib.parse import urlsplit

import requests

from stremora_client.errors import ServerRefused, TargetFailed, UploadError, describe_network_error, message_of

# The one retry of a part rides over a dropped connection or a passing 5xx; a target that
# fails it too is reported (fail/) and the upload moves to the next provider, so a long
# wait here buys nothing but a slower fallback.
QUICK_RETRY_DELAY = 0.1
TARGET_TIMEOUT = (10, 120)  # seconds: to connect, then between bytes of the answer
SIGN_BATCH = 16  # S3 part URLs asked for at once
CHECKSUM_READ = 1024 * 1024  # bytes read at a time for a part's CRC32
CLOUDINARY_SIGNATURE_REFRESH = 50 * 60  # seconds; Cloudinary accepts a signature for an hour


def part_range(number, part_size, size):
    """The bytes ``(offset, length)`` of S3 part ``number`` (from 1)."""
    offset = (number - 1) * part_size
    if number < 1 or offset >= size:
        raise ValueError(f"part {number} is outside a file of {size} bytes in parts of {part_size}")
    return offset, min(part_size, size - offset)


def chunk_ranges(start, chunk_size, size):
    """``(offset, length)`` of each chunk from ``start`` to the end of the file."""
    return [(offset, min(chunk_size, size - offset)) for offset in range(start, size, chunk_size)]


def content_range(offset, length, size):
    return f"bytes {offset}-{offset + length - 1}/{size}"


def read_range(path, offset, length):
    with open(path, "rb") as file:
        data = os.pread(file.fileno(), length, offset)
    if len(data) != length:
        raise UploadError(f"{path} changed while it was being uploaded")
    return data


def crc32_of(path, offset, length):
    """The CRC32 of ``length`` bytes of ``path`` from ``offset``, as S3 takes it (base64
    of its four bytes), read a MiB at a time."""
    crc = 0
    with open(path, "rb") as file:
        for start in range(offset, offset + length, CHECKSUM_READ):
            data = os.pread(file.fileno(), min(CHECKSUM_READ, offset + length - start), start)
            if not data:
                raise UploadError(f"{path} changed while it was being uploaded")
            crc = zlib.crc32(data, crc)
    return base64.b64encode(crc.to_bytes(4, "big")).decode()


def request_with_one_retry(send, url, what):
    """``send()`` once, and once more after a network error or a 5xx; other answers are
    returned as they are. Raises TargetFailed naming ``what`` when both attempts fail."""
    for attempt in (1, 2):
        try:
            response = send()
        except requests.RequestException as error:
            reason = describe_network_error(error, url)
        else:
            if response.status_code < 500:
                return response
            reason = f"HTTP {response.status_code}"
        if attempt == 1:
            time.sleep(QUICK_RETRY_DELAY)
    raise TargetFailed(f"{what}: {reason}")


class ThreadSessions:
    """One requests session per thread (a session is not meant to be shared by threads),
    all closed at the end."""

    def __init__(self, headers=None):
        self._headers = headers or {}
        self._local = threading.local()
        self._all = []
        self._lock = threading.Lock()

    def get(self):
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers.update(self._headers)
            self._local.session = session
            with self._lock:
                self._all.append(session)
        return session

    def close(self):
        with self._lock:
            sessions, self._all = self._all, []
        for session in sessions:
            session.close()


class S3MultipartSender:
    """PUTs the missing parts, ``parallel`` at once, each to its presigned URL (asked for
    in batches as they are needed); returns ``{"parts": [{"number", "etag"}]}``."""

    def __init__(self, api, upload, path, size, progress, parallel):
        self.api, self.upload, self.path, self.size = api, upload, path, size
        self.progress, self.parallel = progress, max(1, parallel)
        target = upload["target"]
        self.part_size, self.part_count = int(target["part_size"]), int(target["part_count"])
        if self.part_size <= 0 or self.part_count != -(-size // self.part_size):
            raise UploadError(f"The server's S3 target does not fit a file of {size} bytes")
        self._urls = {part["number"]: part["url"] for part in target.get("parts", [])}
        # With a "crc32" target each part's URL is signed with its CRC32, which the part
        # is then sent with; S3 checks it.
        self._checksum = target.get("checksum")
        if self._checksum not in (None, "crc32"):
            raise UploadError(f"This client cannot send parts with a {self._checksum!r} checksum")
        self._checksums = {}
        self._url_lock = threading.Lock()
        self._stop = threading.Event()
        self._etags = {}  # number: ETag of each part the provider holds
        self._missing = list(range(1, self.part_count + 1))

    def prepare(self, upload):
        """Take the parts the provider already holds whole; returns their bytes."""
        for part in upload.get("parts") or []:
            number = part.get("number")
            if isinstance(number, int) and 1 <= number <= self.part_count and part.get("etag"):
                if part.get("size") == part_range(number, self.part_size, self.size)[1]:
                    self._etags[number] = part["etag"]
        self._missing = [number for number in range(1, self.part_count + 1) if number not in self._etags]
        return sum(part_range(number, self.part_size, self.size)[1] for number in self._etags)

    def send(self):
        sessions = ThreadSessions()
        pool = ThreadPoolExecutor(self.parallel, thread_name_prefix="stremora-part")
        try:
            futures = [pool.submit(self._send_part, number, sessions) for number in self._missing]
            for future in as_completed(futures):  # the first failure comes out first
                number, etag = future.result()
                self._etags[number] = etag
        except Exception:
            self._stop.set()  # parts not started yet are skipped, those under way end
            pool.shutdown(cancel_futures=True)
            raise
        except BaseException:  # interrupted: leave at once, the upload can be resumed
            self._stop.set()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        else:
            pool.shutdown()
        finally:
            sessions.close()
        return {"parts": [{"number": number, "etag": self._etags[number]} for number in sorted(self._etags)]}

    def _send_part(self, number, sessions):
        if self._stop.is_set():
            raise TargetFailed("stopped after another part failed")
        offset, length = part_range(number, self.part_size, self.size)
        url = self._url_for(number)
        data = read_range(self.path, offset, length)
        session = sessions.get()
        headers = {"x-amz-checksum-crc32": self._checksums[number]} if self._checksum else None
        response = request_with_one_retry(
            lambda: session.put(url, data=data, headers=headers, timeout=TARGET_TIMEOUT), url, f"S3 part {number}"
        )
        if response.status_code != 200:
            code = s3_error_code(response)
            raise TargetFailed(f"S3 refused part {number}: HTTP {response.status_code}{' ' + code if code else ''}")
        etag = response.headers.get("ETag")
        if not etag:
            raise TargetFailed(f"S3 answered part {number} without an ETag")
        self.progress.add(length)
        return number, etag

    def _url_for(self, number):
        """Part ``number``'s URL. The next batch is signed a little ahead, while the
        parts before it are still being sent: when this part or one of the ``parallel``
        after it has no URL yet. Only a thread whose own part has none waits for it."""
        ahead = [n for n in self._missing if n >= number][: self.parallel + 1]
        if not all(n in self._urls for n in ahead):
            if self._url_lock.acquire(blocking=number not in self._urls):
                try:
                    # This part and the next missing ones not signed yet, in one call.
                    wanted = [n for n in self._missing if n >= number and n not in self._urls][:SIGN_BATCH]
                    if wanted:
                        self._sign(wanted)
                finally:
                    self._url_lock.release()
        url = self._urls.get(number)
        if url is None:
            raise UploadError(f"The server did not sign part {number}")
        return url

    def _sign(self, numbers):
        checksums = None
        if self._checksum:
            with ThreadPoolExecutor(self.parallel, thread_name_prefix="stremora-crc32") as pool:
                checksums = list(
                    pool.map(lambda n: crc32_of(self.path, *part_range(n, self.part_size, self.size)), numbers)
                )
            self._checksums.update(zip(numbers, checksums))
        for part in self.api.sign_parts(self.upload["id"], numbers, checksums):
            self._urls[part["number"]] = part["url"]


class CloudinaryChunkedSender:
    """POSTs every chunk in order as a multipart form with the signed fields; returns
    ``{"public_id"}`` from the last chunk's answer. Cloudinary cannot say what it holds
    before the end, so a resumed upload sends every chunk again under the same id."""

    def __init__(self, api, upload, path, size, progress, parallel=1):
        self.api, self.upload, self.path, self.size, self.progress = api, upload, path, size, progress
        self.filename = os.path.basename(path)

    def prepare(self, upload):
        return 0

    def send(self):
        target, signed_at = self.upload["target"], time.monotonic()
        result = {}
        with requests.Session() as session:
            for offset, length in chunk_ranges(0, int(target["chunk_size"]), self.size):
                if time.monotonic() - signed_at > CLOUDINARY_SIGNATURE_REFRESH:
                    target, signed_at = self.api.describe_upload(self.upload["id"])["target"], time.monotonic()
                data = read_range(self.path, offset, length)
                url = target["url"]
                headers = {
                    "Content-Range": content_range(offset, length, self.size),
                    "X-Unique-Upload-Id": target["unique_upload_id"],
                }
                response = request_with_one_retry(
                    lambda: session.post(
                        url, data=target["fields"], files={"file": (self.filename, data)}, headers=headers,
                        timeout=TARGET_TIMEOUT,
                    ),
                    url,
                    f"Cloudinary chunk at byte {offset}",
                )
                if response.status_code != 200:
                    raise TargetFailed(f"Cloudinary refused the chunk at byte {offset}: {message_of(response)}")
                try:
                    result = response.json()
                except ValueError:
                    raise TargetFailed(f"Cloudinary answered the chunk at byte {offset} with no JSON") from None
                self.progress.add(length)
        return {"public_id": result["public_id"]} if isinstance(result, dict) and result.get("public_id") else {}


class LocalChunkedSender:
    """PUTs chunks in order to the server itself, from the bytes it already holds."""

    def __init__(self, api, upload, path, size, progress, parallel=1):
        self.api, self.upload, self.path, self.size, self.progress = api, upload, path, size, progress
        self._offset = 0

    def prepare(self, upload):
        """Start from the bytes the server holds; returns them."""
        held = upload.get("received_bytes")
        self._offset = held if isinstance(held, int) and 0 <= held <= self.size else 0
        return self._offset

    def send(self):
        target = self.upload["target"]
        url, chunk_size = target["url"], int(target["chunk_size"])
        # The token goes only to the server it belongs to.
        headers = self.api.auth_headers() if same_origin(url, self.api.url) else {}
        offset = self._offset
        with requests.Session() as session:
            while offset < self.size:
                length = min(chunk_size, self.size - offset)
                data = read_range(self.path, offset, length)
                chunk_headers = {
                    **headers,
                    "Content-Type": "application/octet-stream",
                    "Content-Range": content_range(offset, length, self.size),
                }
                response = request_with_one_retry(
                    lambda: session.put(url, data=data, headers=chunk_headers, timeout=TARGET_TIMEOUT),
                    url,
                    f"chunk at byte {offset}",
                )
                if response.status_code == 200:
                    received = json_of(response).get("received_bytes")
                elif response.status_code == 400:
                    # A retried chunk whose first try landed: carry on from what the server holds.
                    received = self.api.describe_upload(self.upload["id"]).get("received_bytes")
                    if not isinstance(received, int) or received <= offset:
                        raise ServerRefused(message_of(response), response.status_code)
                else:
                    raise ServerRefused(message_of(response), response.status_code)
                if not isinstance(received, int) or not offset < received <= self.size:
                    raise UploadError(f"The server says it holds {received} bytes after the chunk at byte {offset}")
                self.progress.add(received - offset)
                offset = received
        return {}


def s3_error_code(response):
    """The ``<Code>`` of an S3 error answer (``NoSuchUpload``), or ""."""
    found = re.search(r"<Code>([A-Za-z0-9.]{1,64})</Code>", response.text[:4096])
    return found.group(1) if found else ""


def json_of(response):
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def same_origin(url, other):
    a, b = urlsplit(url), urlsplit(other)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


SENDERS = {
    "s3-multipart": S3MultipartSender,
    "cloudinary-chunked": CloudinaryChunkedSender,
    "local-chunked": LocalChunkedSender,
}
