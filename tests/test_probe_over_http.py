"""Duration and poster of a stored file read through its URL: ffprobe and ffmpeg make
ranged reads, and the server's copy is never downloaded whole."""

import re
import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from videos import probe

pytestmark = pytest.mark.skipif(not probe.tools_available(), reason="ffprobe and ffmpeg are not installed")


class RangeServer:
    """Serves one file over HTTP with single byte ranges, counting the bytes it sends."""

    def __init__(self, data):
        self.data = data
        self.bytes_sent = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                # Bytes counted are bytes the reader took or the kernel holds for it: keep
                # this side's share of that small.
                self.request.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)

            def do_GET(self):
                first, last = 0, len(server.data) - 1
                match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
                if match:
                    first = int(match.group(1))
                    last = min(int(match.group(2) or last), last)
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {first}-{last}/{len(server.data)}")
                else:
                    self.send_response(200)
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Content-Length", str(last - first + 1))
                self.end_headers()
                try:
                    for offset in range(first, last + 1, 64 * 1024):
                        block = server.data[offset : min(offset + 64 * 1024, last + 1)]
                        self.wfile.write(block)
                        with server.lock:
                            server.bytes_sent += len(block)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the reader had what it needed

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/videos/clip.mp4?signature=abc"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def large_video(tmp_path_factory):
    """Thirty seconds of noise, about 90 MB, its index at the front as players want it: far
    more than ffprobe and ffmpeg read, and than the kernel's socket buffers of the
    connections they leave may hold."""
    path = tmp_path_factory.mktemp("video") / "noise.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=duration=30:size=320x180:rate=25",
         "-vf", "noise=alls=100:allf=t", "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0",
         "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(path)],
        check=True, timeout=120,
    )
    return path.read_bytes()


def test_a_stored_video_is_inspected_through_its_url_without_reading_it_whole(large_video):
    server = RangeServer(large_video)
    try:
        info = probe.inspect(server.url)
    finally:
        server.close()

    assert info.duration == pytest.approx(30, abs=0.1)
    assert info.poster_jpeg and info.poster_jpeg[:2] == b"\xff\xd8"
    assert server.bytes_sent < len(large_video) / 2, (server.bytes_sent, len(large_video))



def test_a_url_that_cannot_be_read_is_logged_without_its_signature(caplog):
    """A presigned URL's query is a credential: ffprobe's error names the URL, the log cuts its query."""
    server = RangeServer(b"")

    class Refusing(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(403)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server.httpd.RequestHandlerClass = Refusing
    url = server.url.replace("signature=abc", "X-Amz-Credential=AKIAEXAMPLE&X-Amz-Signature=5ecret5ignature")
    try:
        with caplog.at_level("INFO", logger="videos.probe"):
            info = probe.inspect(url)
    finally:
        server.close()

    assert (info.duration, info.poster_jpeg) == (None, None)
    [record] = [record for record in caplog.records if record.name == "videos.probe"]
    message = record.getMessage()
    assert "403" in message and "/videos/clip.mp4?…" in message
    assert "5ecret5ignature" not in message and "AKIAEXAMPLE" not in message


def test_a_read_that_fails_once_is_a_failure_to_retry_not_a_video_without_a_duration(large_video):
    """ffprobe's read refused, ffmpeg's served a moment later: the job asks again rather
    than store a poster with no duration."""
    server = RangeServer(large_video)
    serve = server.httpd.RequestHandlerClass.do_GET
    refused = []

    def refuse_the_first_reads(handler):
        if not refused:
            refused.append(handler.path)
            handler.send_response(503)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        serve(handler)

    server.httpd.RequestHandlerClass.do_GET = refuse_the_first_reads
    try:
        with pytest.raises(probe.ReadFailed, match="Could not inspect clip.mp4: ffprobe exited"):
            probe.inspect(server.url, raise_read_errors=True)
        # The same, asked again once the URL answers: both details.
        info = probe.inspect(server.url, raise_read_errors=True)
    finally:
        server.close()
    assert 29 < info.duration < 31 and info.poster_jpeg
