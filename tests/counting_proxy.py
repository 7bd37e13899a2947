"""An HTTP proxy on loopback that counts the requests it passes on, for S3 on moto's server.

    with CountingProxy("127.0.0.1", moto_port) as proxy:
        ...  # point AWS_S3_ENDPOINT_URL (and so every presigned URL) at proxy.url
        proxy.parts_landed()     # {part number: times S3 took it}
        proxy.part_checksums     # [(part, CRC32 header sent, it is the body's, headers signed)]

A request is passed on only once its whole body has arrived, so a part whose sender
died midway never reaches S3 and is not counted: what is counted is what S3 stored.
``delay`` holds each part that long before reading it, as a slow link would, to make
an upload slow enough to be cut in the middle; ``fail_once`` (part numbers) answers the first PUT of
each of those parts with a 500 of its own, without passing it on.
"""

import base64
import contextlib
import http.client
import threading
import time
import zlib
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade"}


class CountingProxy:
    def __init__(self, target_host, target_port, delay=0.0, fail_once=()):
        self.target = (target_host, target_port)
        self.delay = delay
        self.fail_once = set(fail_once)
        self.requests = []  # (method, path, part number or None, status) of each request passed on
        self.in_flight = 0  # requests being received or passed on now
        # What S3 checks of a part sent with a checksum (moto does not): each part PUT's
        # (part, x-amz-checksum-crc32 sent, whether it is the body's CRC32, the URL's
        # X-Amz-SignedHeaders).
        self.part_checksums = []
        self._lock = threading.Lock()
        self._server = None

    @property
    def url(self):
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self):
        proxy = self

        class Handler(ForwardingHandler):
            owner = proxy

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="counting-proxy", daemon=True).start()
        return self

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    @contextlib.contextmanager
    def passing(self):
        with self._lock:
            self.in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                self.in_flight -= 1

    def take_failure(self, method, part):
        """True, once, for a PUT of a part in ``fail_once``."""
        with self._lock:
            if method == "PUT" and part in self.fail_once:
                self.fail_once.discard(part)
                return True
            return False

    def record(self, method, path, part, status):
        with self._lock:
            self.requests.append((method, path, part, status))

    def parts_landed(self):
        """How many times S3 took each part number (PUTs answered 200)."""
        with self._lock:
            return Counter(part for method, _, part, status in self.requests
                           if method == "PUT" and part is not None and status == 200)


class ForwardingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner = None  # the CountingProxy

    def log_message(self, *args):
        pass

    def _forward(self):
        with self.owner.passing():
            self._pass_on()

    def _pass_on(self):
        query = parse_qs(urlsplit(self.path).query)
        part = int(query["partNumber"][0]) if "partNumber" in query else None
        if part is not None and self.command == "PUT" and self.owner.delay:
            time.sleep(self.owner.delay)  # a slow link: the part is still on its way
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if len(body) != length:
            self.close_connection = True
            return  # the sender went away midway: nothing reaches S3
        if part is not None and self.command == "PUT":
            sent = self.headers.get("x-amz-checksum-crc32")
            actual = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
            signed = query.get("X-Amz-SignedHeaders", [""])[0]
            with self.owner._lock:
                self.owner.part_checksums.append((part, sent, sent == actual, signed))
        if self.owner.take_failure(self.command, part):
            self.owner.record(self.command, urlsplit(self.path).path, part, 500)
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        headers = {
            name: value for name, value in self.headers.items() if name.lower() not in HOP_BY_HOP | {"expect"}
        }
        upstream = http.client.HTTPConnection(*self.owner.target, timeout=60)
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            answer = response.read()
        finally:
            upstream.close()
        self.owner.record(self.command, urlsplit(self.path).path, part, response.status)
        self.send_response_only(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in HOP_BY_HOP | {"content-length"}:
                self.send_header(name, value)
        # A HEAD answer keeps the length of what a GET would send.
        length = response.getheader("Content-Length", "0") if self.command == "HEAD" else str(len(answer))
        self.send_header("Content-Length", length)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_OPTIONS = _forward  # OPTIONS: a browser's CORS preflight
