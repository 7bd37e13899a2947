"""A stand-in for Cloudinary's API on 127.0.0.1, for the test suite and the benchmarks.

It speaks the part of Cloudinary that Stremora uses, as the ``cloudinary`` SDK calls it
(``upload_prefix`` pointed here moves both the Upload and the Admin API):

- Upload API, signed with SHA-1 over exactly the posted parameters (all but ``file``,
  ``api_key``, ``resource_type``, ``cloud_name`` and ``signature``) and the API secret,
  for one hour after the signed ``timestamp`` (401 "Invalid Signature ...", "Stale
  request ..."): ``POST /v1_1/CLOUD/TYPE/upload`` (whole files, or chunks carrying
  ``Content-Range`` and ``X-Unique-Upload-Id`` as ``upload_large`` or a browser sends
  them, assembled by that id, a chunk sent again replacing what followed it; every
  answer names the ``public_id``, the last one describes the resource), ``overwrite=0``
  or ``false`` answering ``"existing": true`` for a taken public_id, and
  ``POST /v1_1/CLOUD/TYPE/destroy`` answering ``{"result": "ok" | "not found"}``. Both
  answer CORS (a preflight ``OPTIONS``, and ``Access-Control-Allow-Origin`` on every
  answer), so a page on another origin can post chunks, as it can to Cloudinary.
- Admin API, HTTP Basic auth with key and secret: ``GET /v1_1/CLOUD/ping``,
  ``GET /v1_1/CLOUD/resources/TYPE/upload/PUBLIC_ID``, the listing
  ``GET /v1_1/CLOUD/resources/TYPE[/upload]?prefix=&max_results=&next_cursor=`` with
  ``next_cursor`` absent on the last page, and ``DELETE /v1_1/CLOUD/resources/TYPE/upload``.
- Delivery: ``GET /CLOUD/TYPE/upload/[transformations/][vVERSION/]PUBLIC_ID.FORMAT``
  with single byte ranges, so players can seek; ``delivered_bytes`` counts what it sent.

Errors use Cloudinary's body, ``{"error": {"message": ...}}``. The server can be told
to fail (``fail()`` in process, ``POST /_control/fail`` from another one):

    http_500, http_502, http_401, rate_limit (420), malformed_json, wrong_answer
    (200 without the file's public_id), drop (close without answering), hang (answer
    nothing until healed), refuse (stop listening: connection refused)

Like Cloudinary's plans, it can cap the size of a file: ``max_file_size`` (bytes; None,
the default, for no cap) makes a larger upload a 400 "File size too large".

Run on its own: ``python -m tests.cloudinary_server --port 0`` prints
``READY http://127.0.0.1:PORT`` once it listens.
"""

import argparse
import base64
import hashlib
import io
import json
import random
import re
import shutil
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

FAULTS = (
    "http_500",
    "http_502",
    "http_401",
    "rate_limit",
    "malformed_json",
    "wrong_answer",
    "drop",
    "hang",
    "refuse",
)
ACTIONS = ("upload", "destroy", "ping", "resource", "resources", "delete_resources", "delivery")
RESOURCE_TYPES = ("image", "video", "raw")
# Cloudinary refuses signed requests whose timestamp is older than this.
SIGNATURE_MAX_AGE = 3600
# A hang lasts until healed, or this long at most, so no test can wedge forever.
HANG_LIMIT = 120
# What a page on another origin may send to the Upload API, and read of its answers.
CORS_ALLOWED_HEADERS = "Content-Type, Content-Range, X-Unique-Upload-Id, X-Requested-With"
CORS_EXPOSED_HEADERS = "X-Request-Id, X-Cld-Error"
CORS_MAX_AGE = 600


class Fault:
    def __init__(self, kind, actions=None, times=None, probability=1.0, skip=0, seed=None):
        if kind not in FAULTS:
            raise ValueError(f"Unknown fault {kind!r}; one of {', '.join(FAULTS)}")
        unknown = set(actions or ()) - set(ACTIONS)
        if unknown:
            raise ValueError(f"Unknown actions {sorted(unknown)}")
        self.kind = kind
        self.actions = frozenset(actions or ACTIONS)
        self.remaining = times
        self.probability = probability
        self.skip = skip
        self.random = random.Random(seed)

    def applies_to(self, action):
        """Whether this request fails; counts it against ``times`` and ``skip``."""
        if action not in self.actions or self.remaining == 0:
            return False
        if self.skip:
            self.skip -= 1
            return False
        if self.probability < 1.0 and self.random.random() >= self.probability:
            return False
        if self.remaining is not None:
            self.remaining -= 1
        return True


class CloudinaryTestServer:
    def __init__(
        self,
        cloud_name="stremora-test",
        api_key="123456789012345",
        api_secret="test-api-secret-abc",
        host="127.0.0.1",
        port=0,
        storage_dir=None,
        video_duration=12.5,
    ):
        self.cloud_name = cloud_name
        self.api_key = api_key
        self.api_secret = api_secret
        self.host = host
        self.port = port
        self.video_duration = video_duration
        self._own_dir = storage_dir is None
        self.storage_dir = Path(storage_dir or tempfile.mkdtemp(prefix="cloudinary-test-"))
        self._lock = threading.Lock()
        self._healed = threading.Event()
        self._httpd = None
        self._thread = None
        self.reset()

    # -- lifecycle -----------------------------------------------------------

    @property
    def url(self):
        return f"http://{self.host}:{self.port}"

    @property
    def cloudinary_url(self):
        return f"cloudinary://{self.api_key}:{self.api_secret}@{self.cloud_name}"

    def start(self):
        self._listen()
        return self

    def stop(self):
        self._healed.set()
        self._unlisten()
        if self._own_dir:
            shutil.rmtree(self.storage_dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    def _listen(self):
        if self._httpd is not None:
            return
        httpd = ThreadingHTTPServer((self.host, self.port), _Handler)
        httpd.daemon_threads = True
        httpd.app = self
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def _unlisten(self):
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
            self._thread.join(timeout=5)

    # -- faults and state ----------------------------------------------------

    def fail(self, kind, actions=None, times=None, probability=1.0, skip=0, seed=None):
        """Fail matching requests from now on: ``times`` of them, or all until ``heal()``."""
        fault = Fault(kind, actions, times, probability, skip, seed)
        with self._lock:
            self._healed.clear()
            self._faults.append(fault)
        if kind == "refuse":
            self._unlisten()
        return fault

    def heal(self):
        with self._lock:
            self._faults.clear()
        self._healed.set()
        self._listen()

    def reset(self):
        """Forget every resource, fault and counter."""
        with self._lock:
            self._faults = []
            self._resources = {}
            self._partial_uploads = {}
            self.requests = {action: 0 for action in ACTIONS}
            self.faults_served = 0
            self.delivered_bytes = 0
            self.max_file_size = None
        self._healed.set()
        for child in ("files", "partial"):
            shutil.rmtree(self.storage_dir / child, ignore_errors=True)
            (self.storage_dir / child).mkdir(parents=True, exist_ok=True)
        if self._httpd is None and self._thread is not None:
            self._listen()

    def _fault_for(self, action):
        with self._lock:
            self.requests[action] += 1
            for fault in self._faults:
                if fault.applies_to(action):
                    self.faults_served += 1
                    return fault.kind
        return None

    def resources(self, resource_type=None):
        """``{(resource_type, public_id): record}`` of what is stored."""
        with self._lock:
            return {
                key: dict(record)
                for key, record in self._resources.items()
                if resource_type in (None, key[0])
            }

    def content(self, public_id, resource_type="video"):
        with self._lock:
            record = self._resources.get((resource_type, public_id))
        if record is None:
            raise KeyError(f"no {resource_type} resource {public_id}")
        return self._path_of(resource_type, public_id).read_bytes()

    def put(self, public_id, data, resource_type="video", file_format="mp4", created_at=None):
        """Store a resource directly, as if uploaded at ``created_at`` (a datetime)."""
        with self._lock:
            return self._store(resource_type, public_id, file_format, data, "seeded", created_at)

    def _path_of(self, resource_type, public_id):
        digest = hashlib.sha1(public_id.encode()).hexdigest()
        return self.storage_dir / "files" / resource_type / digest

    # -- Cloudinary's behaviour ---------------------------------------------

    def _store(self, resource_type, public_id, file_format, data_or_path, original_filename, created_at=None):
        path = self._path_of(resource_type, public_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data_or_path, Path):
            shutil.move(data_or_path, path)
        else:
            path.write_bytes(data_or_path)
        created = created_at or datetime.now(timezone.utc)
        version = int(created.timestamp())
        suffix = f".{file_format}" if file_format else ""
        delivery = f"{self.url}/{self.cloud_name}/{resource_type}/upload/v{version}/{public_id}{suffix}"
        record = {
            "asset_id": uuid.uuid4().hex,
            "public_id": public_id,
            "version": version,
            "version_id": uuid.uuid4().hex,
            "signature": hashlib.sha1(public_id.encode() + str(version).encode()).hexdigest(),
            "resource_type": resource_type,
            "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tags": [],
            "bytes": path.stat().st_size,
            "type": "upload",
            "etag": _md5_of(path),
            "placeholder": False,
            "url": delivery,
            "secure_url": delivery,
            "original_filename": original_filename,
        }
        if file_format:
            record["format"] = file_format
        if resource_type == "video":
            record["duration"] = self.video_duration
        self._resources[(resource_type, public_id)] = record
        return record

    def _check_signature(self, fields):
        if fields.get("api_key") != self.api_key:
            return "Unknown API key"
        signed = {
            key: value
            for key, value in fields.items()
            if key not in ("file", "api_key", "resource_type", "signature", "cloud_name") and value != ""
        }
        to_sign = "&".join(sorted(f"{key}={value}".replace("&", "%26") for key, value in signed.items()))
        expected = hashlib.sha1((to_sign + self.api_secret).encode()).hexdigest()
        if fields.get("signature") != expected:
            return f"Invalid Signature {fields.get('signature')}. String to sign - '{to_sign}'."
        try:
            age = time.time() - int(fields.get("timestamp", "0"))
        except ValueError:
            age = SIGNATURE_MAX_AGE + 1
        if abs(age) > SIGNATURE_MAX_AGE:
            return f"Stale request - reported time is {fields.get('timestamp')}"
        return None

    def upload(self, resource_type, fields, file_part, headers):
        """One upload request; returns ``(status, body)``."""
        error = self._check_signature(fields)
        if error:
            return 401, _error(error)
        if file_part is None:
            return 400, _error("Missing required parameter - file")
        filename, data = file_part
        content_range = headers.get("Content-Range")
        declared_total = (content_range or "").rpartition("/")[2]
        size = int(declared_total) if declared_total.isdigit() else len(data)
        if self.max_file_size is not None and size > self.max_file_size:
            return 400, _error(f"File size too large. Got {size}. Maximum is {self.max_file_size}.")
        public_id = fields.get("public_id") or uuid.uuid4().hex[:20]
        if fields.get("folder"):
            public_id = f"{fields['folder'].strip('/')}/{public_id}"
        extension = Path(filename or "").suffix.lstrip(".").lower()
        file_format = None if resource_type == "raw" else (fields.get("format") or extension or None)
        overwrite = fields.get("overwrite", "1").lower() not in ("0", "false")

        if content_range:
            return self._upload_chunk(
                resource_type, public_id, file_format, filename, data, content_range,
                headers.get("X-Unique-Upload-Id") or "", overwrite,
            )
        return self._finish(resource_type, public_id, file_format, filename, data, overwrite)

    def _upload_chunk(self, resource_type, public_id, file_format, filename, data, content_range, upload_id, overwrite):
        match = re.fullmatch(r"bytes (\d+)-(\d+)/(-?\d+)", content_range.strip())
        if not match or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", upload_id):
            return 400, _error("Invalid Content-Range or X-Unique-Upload-Id")
        first, last, total = map(int, match.groups())
        if last - first + 1 != len(data):
            return 400, _error(f"Content-Range {content_range} does not match a chunk of {len(data)} bytes")
        partial = self.storage_dir / "partial" / upload_id
        with self._lock:
            owner, received = self._partial_uploads.get(upload_id, ((resource_type, public_id), 0))
            if owner != (resource_type, public_id):
                return 400, _error(f"X-Unique-Upload-Id {upload_id} belongs to an upload of another file")
            if first > received:
                return 400, _error(f"Chunk starts at {first}, expected {received}")
            # A chunk sent again (a client resuming) replaces it and everything after it.
            with open(partial, "r+b" if partial.exists() else "wb") as handle:
                handle.truncate(first)
                handle.seek(first)
                handle.write(data)
            self._partial_uploads[upload_id] = (owner, last + 1)
        if total < 0 or last + 1 < total:
            return 200, {"done": False, "public_id": public_id, "bytes": last + 1, "upload_id": upload_id}
        with self._lock:
            del self._partial_uploads[upload_id]
        return self._finish(resource_type, public_id, file_format, filename, partial, overwrite)

    def _finish(self, resource_type, public_id, file_format, filename, data_or_path, overwrite):
        if file_format is None and resource_type == "video":
            # A chunk posted as a bare blob names no extension: Cloudinary tells by the content.
            file_format = _video_format_of(data_or_path)
        with self._lock:
            existing = self._resources.get((resource_type, public_id))
            if existing and not overwrite:
                if isinstance(data_or_path, Path):
                    data_or_path.unlink(missing_ok=True)
                return 200, {**existing, "existing": True}
            return 200, {**self._store(resource_type, public_id, file_format, data_or_path, filename), "existing": False}

    def destroy(self, resource_type, fields):
        error = self._check_signature(fields)
        if error:
            return 401, _error(error)
        with self._lock:
            record = self._resources.pop((resource_type, fields.get("public_id", "")), None)
        if record is None:
            return 200, {"result": "not found"}
        self._path_of(resource_type, record["public_id"]).unlink(missing_ok=True)
        return 200, {"result": "ok"}

    def listing(self, resource_type, query):
        prefix = query.get("prefix", "")
        max_results = min(max(int(query.get("max_results", "10")), 1), 500)
        start = int(query.get("next_cursor") or 0)
        with self._lock:
            matching = sorted(
                (record for (kind, _), record in self._resources.items() if kind == resource_type),
                key=lambda record: record["public_id"],
            )
        matching = [record for record in matching if record["public_id"].startswith(prefix)]
        page = matching[start : start + max_results]
        body = {"resources": page}
        if start + max_results < len(matching):
            body["next_cursor"] = str(start + max_results)
        return 200, body

    def delete_resources(self, resource_type, public_ids):
        deleted = {}
        for public_id in public_ids:
            with self._lock:
                record = self._resources.pop((resource_type, public_id), None)
            if record is not None:
                self._path_of(resource_type, public_id).unlink(missing_ok=True)
            deleted[public_id] = "deleted" if record else "not_found"
        return 200, {"deleted": deleted, "partial": False}

    def find_delivery(self, resource_type, path):
        """The record a delivery path names, skipping transformation and version segments."""
        segments = path.split("/")
        for start in range(len(segments)):
            candidate = "/".join(segments[start:])
            for public_id in (candidate, candidate.rsplit(".", 1)[0]):
                with self._lock:
                    record = self._resources.get((resource_type, public_id))
                if record is not None:
                    return record, candidate[len(public_id) + 1 :] if candidate != public_id else None
        return None, None


def _error(message):
    return {"error": {"message": message}}


def _video_format_of(data_or_path):
    if isinstance(data_or_path, Path):
        with open(data_or_path, "rb") as handle:
            head = handle.read(12)
    else:
        head = data_or_path[:12]
    if head[4:8] == b"ftyp":
        return "mov" if head[8:12] == b"qt  " else "mp4"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "webm"
    return None


def _md5_of(path):
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def parse_multipart(body, content_type):
    """``(fields, file_part)`` of a multipart/form-data body; file_part is ``(filename, bytes)``."""
    match = re.search(r'boundary="?([^";]+)"?', content_type or "")
    if not match:
        return {}, None
    delimiter = b"--" + match.group(1).encode()
    fields, file_part = {}, None
    for part in body.split(delimiter)[1:]:
        if part.startswith(b"--"):
            break
        head, _, value = part[2:].partition(b"\r\n\r\n")
        value = value[:-2] if value.endswith(b"\r\n") else value
        disposition = next(
            (line for line in head.decode("utf-8", "replace").split("\r\n") if line.lower().startswith("content-disposition")),
            "",
        )
        name = re.search(r'\bname="([^"]*)"', disposition)
        filename = re.search(r'\bfilename="([^"]*)"', disposition)
        if not name:
            continue
        if name.group(1) == "file":
            file_part = (filename.group(1) if filename else "", value)
        else:
            fields[name.group(1)] = value.decode("utf-8")
    return fields, file_part


class _Handler(BaseHTTPRequestHandler):
    # One request per connection: a "refuse" or "drop" fault then reaches every client at once.
    protocol_version = "HTTP/1.0"
    server_version = "CloudinaryTestServer"

    def log_message(self, format, *args):
        pass

    @property
    def app(self):
        return self.server.app

    # -- plumbing ------------------------------------------------------------

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status, body, content_type="application/json", extra_headers=None):
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-Request-Id", uuid.uuid4().hex)
        if getattr(self, "_cors", False):
            self._send_cors_headers()
        for header, value in (extra_headers or {}).items():
            self.send_header(header, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _serve_fault(self, kind):
        if kind == "hang":
            self.app._healed.wait(HANG_LIMIT)
            self.close_connection = True
            return
        if kind in ("drop", "refuse"):
            self.close_connection = True
            return
        responses = {
            "http_500": (500, _error("General Error")),
            "http_401": (401, _error("Invalid api_key " + self.app.api_key)),
            "rate_limit": (420, _error("Rate Limit Exceeded")),
            "http_502": (502, b"<html><body>502 Bad Gateway</body></html>"),
            "malformed_json": (200, b'{"public_id": "trunc'),
            "wrong_answer": (200, {"status": "accepted"}),
        }
        status, body = responses[kind]
        self._send(status, body, "text/html" if isinstance(body, bytes) else "application/json")

    def _send_cors_headers(self):
        self.send_header("Access-Control-Allow-Origin", self.headers.get("Origin") or "*")
        self.send_header("Access-Control-Expose-Headers", CORS_EXPOSED_HEADERS)
        self.send_header("Vary", "Origin")

    def _is_upload_api(self, parts):
        return len(parts) == 4 and parts[0] == "v1_1" and parts[3] in ("upload", "destroy")

    def _admin_authorised(self):
        expected = base64.b64encode(f"{self.app.api_key}:{self.app.api_secret}".encode()).decode()
        return self.headers.get("Authorization", "") == f"Basic {expected}"

    def _route(self):
        split = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(split.query).items()}
        multi_query = parse_qs(split.query)
        parts = [unquote(part) for part in split.path.strip("/").split("/")]
        return parts, query, multi_query

    # -- requests ------------------------------------------------------------

    def do_GET(self):
        parts, query, _ = self._route()
        if parts[:1] == ["_control"]:
            return self._control_get(parts[1:])
        if parts[:1] == ["v1_1"]:
            return self._admin("GET", parts[1:], query, [])
        return self._delivery(parts)

    do_HEAD = do_GET

    def do_DELETE(self):
        parts, query, multi_query = self._route()
        self._body()
        if parts[:1] == ["v1_1"]:
            return self._admin("DELETE", parts[1:], query, multi_query.get("public_ids[]", []))
        self._send(404, _error("Not found"))

    def do_OPTIONS(self):
        parts, _, _ = self._route()
        self._body()
        if not self._is_upload_api(parts):
            return self._send(404, _error("Not found"))
        self._cors = True
        self._send(
            200,
            b"",
            "text/plain",
            {
                "Access-Control-Allow-Methods": "POST, OPTIONS",
                "Access-Control-Allow-Headers": CORS_ALLOWED_HEADERS,
                "Access-Control-Max-Age": str(CORS_MAX_AGE),
            },
        )

    def do_POST(self):
        parts, _, _ = self._route()
        body = self._body()
        if parts[:1] == ["_control"]:
            return self._control_post(parts[1:], body)
        if not self._is_upload_api(parts):
            return self._send(404, _error("Not found"))
        self._cors = True
        _, cloud, resource_type, action = parts
        fault = self.app._fault_for(action)
        if fault:
            return self._serve_fault(fault)
        if cloud != self.app.cloud_name:
            return self._send(401, _error(f"Invalid cloud_name {cloud}"))
        if resource_type not in RESOURCE_TYPES:
            return self._send(400, _error(f"Invalid resource type {resource_type}"))
        fields, file_part = parse_multipart(body, self.headers.get("Content-Type"))
        if action == "upload":
            status, answer = self.app.upload(resource_type, fields, file_part, self.headers)
        else:
            status, answer = self.app.destroy(resource_type, fields)
        self._send(status, answer)

    def _admin(self, method, parts, query, public_ids):
        # parts: CLOUD, then "ping" | "resources", TYPE[, "upload"[, PUBLIC_ID...]]
        if len(parts) >= 2 and parts[1] == "ping":
            action = "ping"
        elif method == "DELETE":
            action = "delete_resources"
        elif len(parts) > 4:
            action = "resource"
        else:
            action = "resources"
        fault = self.app._fault_for(action)
        if fault:
            return self._serve_fault(fault)
        if not self._admin_authorised():
            return self._send(401, _error("Invalid credentials"))
        if parts[0] != self.app.cloud_name:
            return self._send(401, _error(f"Invalid cloud_name {parts[0]}"))
        if action == "ping":
            return self._send(200, {"status": "ok"})
        if len(parts) < 3 or parts[1] != "resources" or parts[2] not in RESOURCE_TYPES:
            return self._send(404, _error("Not found"))
        resource_type = parts[2]
        if len(parts) > 3 and parts[3] != "upload":
            return self._send(400, _error(f"Unsupported type {parts[3]}"))
        if action == "resource":
            public_id = "/".join(parts[4:])
            record = self.app.resources(resource_type).get((resource_type, public_id))
            if record is None:
                return self._send(404, _error(f"Resource not found - {public_id}"))
            return self._send(200, record)
        if action == "delete_resources":
            return self._send(*self.app.delete_resources(resource_type, public_ids))
        try:
            return self._send(*self.app.listing(resource_type, query))
        except ValueError as exc:
            return self._send(400, _error(str(exc)))

    def _delivery(self, parts):
        fault = self.app._fault_for("delivery")
        if fault:
            return self._serve_fault(fault)
        if len(parts) < 4 or parts[0] != self.app.cloud_name or parts[1] not in RESOURCE_TYPES or parts[2] != "upload":
            return self._send(404, b"Not found", "text/plain")
        record, requested_format = self.app.find_delivery(parts[1], "/".join(parts[3:]))
        if record is None:
            return self._send(404, b"Resource not found", "text/plain", {"X-Cld-Error": "Resource not found"})
        if record["resource_type"] == "video" and requested_format in ("jpg", "jpeg", "png", "webp"):
            # A poster frame: any small image stands in for the frame Cloudinary would cut.
            return self._send(200, _poster_image(), "image/jpeg")
        data = self.app.content(record["public_id"], record["resource_type"])
        content_type = {"video": f"video/{record.get('format', 'mp4')}", "image": f"image/{record.get('format', 'jpeg')}"}
        content_type = content_type.get(record["resource_type"], "application/octet-stream")
        headers = {"Accept-Ranges": "bytes"}
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "").strip())
        if match and data and any(match.groups()):
            first_text, last_text = match.groups()
            if first_text:
                first, last = int(first_text), min(int(last_text or len(data) - 1), len(data) - 1)
            else:
                first, last = max(len(data) - int(last_text), 0), len(data) - 1
            if first > last:
                return self._send(416, b"", content_type, {"Content-Range": f"bytes */{len(data)}"})
            headers["Content-Range"] = f"bytes {first}-{last}/{len(data)}"
            data = data[first : last + 1]
            status = 206
        else:
            status = 200
        if self.command != "HEAD":
            with self.app._lock:
                self.app.delivered_bytes += len(data)
        self._send(status, data, content_type, headers)

    def _control_get(self, parts):
        if parts == ["resources"]:
            return self._send(200, {"resources": list(self.app.resources().values())})
        if parts == ["stats"]:
            return self._send(200, {"requests": self.app.requests, "faults_served": self.app.faults_served})
        self._send(404, _error("Unknown control"))

    def _control_post(self, parts, body):
        try:
            options = json.loads(body or b"{}")
            if parts == ["fail"]:
                self.app.fail(options.pop("fault"), **options)
            elif parts == ["heal"]:
                self.app.heal()
            elif parts == ["reset"]:
                self.app.reset()
            else:
                return self._send(404, _error("Unknown control"))
        except (KeyError, TypeError, ValueError) as exc:
            return self._send(400, _error(f"{type(exc).__name__}: {exc}"))
        self._send(200, {"ok": True})


_POSTER = None


def _poster_image():
    global _POSTER
    if _POSTER is None:
        from PIL import Image

        buffer = io.BytesIO()
        Image.new("RGB", (16, 9), (40, 40, 40)).save(buffer, format="JPEG")
        _POSTER = buffer.getvalue()
    return _POSTER


def main():
    parser = argparse.ArgumentParser(description="A stand-in for Cloudinary's API on loopback.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--dir", help="where uploaded files are kept (a temporary folder if unset)")
    parser.add_argument("--cloud-name", default="stremora-test")
    parser.add_argument("--api-key", default="123456789012345")
    parser.add_argument("--api-secret", default="test-api-secret-abc")
    args = parser.parse_args()
    server = CloudinaryTestServer(args.cloud_name, args.api_key, args.api_secret, args.host, args.port, args.dir)
    server.start()
    print(f"READY {server.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
