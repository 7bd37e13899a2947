"""moto's S3 server in a process of its own, for end-to-end tests and the benchmarks.

moto's in-process mock and its server share state in one process (entering or leaving
``mock_aws`` resets the server), so the server always runs as a subprocess here.

    with MotoServer() as server:
        server.client().create_bucket(Bucket="videos")
        server.keys("videos")
"""

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import boto3
from botocore.config import Config

START_TIMEOUT = 20
STOP_TIMEOUT = 5


def free_port(host="127.0.0.1"):
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def server_environment():
    """The caller's environment without AWS settings that could reach the server."""
    return {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}


class MotoServer:
    def __init__(self, host="127.0.0.1", port=None):
        self.host = host
        self.port = port or free_port(host)
        self._process = None
        self._log = None

    @property
    def url(self):
        return f"http://{self.host}:{self.port}"

    def start(self):
        if self._process is not None:
            return self
        # A file rather than a pipe: nobody reads the output, and a full pipe blocks the server.
        self._log = tempfile.TemporaryFile()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=server_environment(),
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and self._process.poll() is None:
            if self._answers():
                return self
            time.sleep(0.1)
        exit_code = self._process.poll()
        log_tail = self.log_tail()
        self.stop()
        reason = f"exited with code {exit_code}" if exit_code is not None else "did not answer"
        raise RuntimeError(f"moto's S3 server on {self.url} {reason}:\n{log_tail}")

    def _answers(self):
        try:
            with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1):
                return True
        except urllib.error.HTTPError:
            return True  # an HTTP error is still an answer
        except (urllib.error.URLError, OSError):
            return False

    def log_tail(self, size=2000):
        """The end of what the server wrote to stdout and stderr."""
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")[-size:]

    def stop(self):
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    def reset(self):
        """Forget every bucket and object."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST", data=b"")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}),
        )

    def keys(self, bucket, prefix=""):
        paginator = self.client().get_paginator("list_objects_v2")
        return [
            item["Key"]
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
            for item in page.get("Contents", [])
        ]

    def multipart_uploads(self, bucket):
        return self.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
