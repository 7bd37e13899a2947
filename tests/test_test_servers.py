"""The test servers themselves: moto's S3 server in a subprocess and the fault proxy."""

import socket
import threading
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import (
    ConnectionError as BotocoreConnectionError,
    EndpointConnectionError,
    HTTPClientError,
    ReadTimeoutError,
)

from tests.fault_proxy import FaultProxy
from tests.s3_server import MotoServer

BUCKET = "test-servers"


@pytest.fixture(scope="module")
def moto():
    with MotoServer() as server:
        yield server


@pytest.fixture
def empty_moto(moto):
    moto.reset()
    return moto


@pytest.fixture
def proxy(moto):
    with FaultProxy("127.0.0.1", moto.port) as proxy:
        yield proxy


def impatient_client(url):
    """A new client, so no pooled connection from an earlier mode is reused."""
    return boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
        config=Config(
            connect_timeout=1, read_timeout=1, retries={"max_attempts": 1}, s3={"addressing_style": "path"}
        ),
    )


def refuses_connections(port):
    with socket.socket() as probe:
        probe.settimeout(2)
        return probe.connect_ex(("127.0.0.1", port)) != 0


def proxy_threads():
    return [thread for thread in threading.enumerate() if thread.name.startswith("fault-proxy")]


def test_moto_server_stores_lists_and_forgets_objects(empty_moto):
    client = empty_moto.client()
    client.create_bucket(Bucket=BUCKET)
    client.put_object(Bucket=BUCKET, Key="videos/a.mp4", Body=b"a")
    client.put_object(Bucket=BUCKET, Key="posters/a.jpg", Body=b"p")
    client.create_multipart_upload(Bucket=BUCKET, Key="videos/big.mp4")

    assert empty_moto.url == f"http://127.0.0.1:{empty_moto.port}"
    assert sorted(empty_moto.keys(BUCKET)) == ["posters/a.jpg", "videos/a.mp4"]
    assert empty_moto.keys(BUCKET, prefix="videos/") == ["videos/a.mp4"]
    assert [upload["Key"] for upload in empty_moto.multipart_uploads(BUCKET)] == ["videos/big.mp4"]

    empty_moto.reset()

    assert client.list_buckets()["Buckets"] == []


def test_moto_server_stops_and_its_port_refuses():
    server = MotoServer().start()
    server.client().create_bucket(Bucket=BUCKET)

    server.stop()
    server.stop()

    assert refuses_connections(server.port)


def test_moto_server_that_cannot_start_says_why():
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        with pytest.raises(RuntimeError, match="moto's S3 server"):
            MotoServer(port=squatter.getsockname()[1]).start()


def test_proxy_passes_requests_through(empty_moto, proxy):
    empty_moto.client().create_bucket(Bucket=BUCKET)

    client = impatient_client(proxy.url)
    client.put_object(Bucket=BUCKET, Key="through-the-proxy", Body=b"x" * 200_000)

    assert [bucket["Name"] for bucket in client.list_buckets()["Buckets"]] == [BUCKET]
    assert empty_moto.keys(BUCKET) == ["through-the-proxy"]
    assert proxy.url == f"http://127.0.0.1:{proxy.port}"
    assert proxy.connections >= 1


def test_refuse_closes_the_port_and_open_connections(proxy):
    open_connection = socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
    port = proxy.port

    proxy.set_mode("refuse")

    with pytest.raises(EndpointConnectionError):
        impatient_client(proxy.url).list_buckets()
    assert refuses_connections(port)
    with open_connection:
        try:
            assert open_connection.recv(1) == b""
        except ConnectionResetError:
            pass
    proxy.set_mode("pass")
    assert proxy.port == port
    impatient_client(proxy.url).list_buckets()


def test_hang_times_out_the_read(proxy):
    proxy.set_mode("hang")

    started = time.monotonic()
    with pytest.raises(ReadTimeoutError):
        impatient_client(proxy.url).list_buckets()

    # One read timeout per attempt: the first try and one retry.
    assert time.monotonic() - started < 4
    assert proxy.connections >= 1


def test_reset_drops_the_connection(proxy):
    proxy.set_mode("reset")

    # Whether the reset lands before or after the request is sent decides which one.
    with pytest.raises((BotocoreConnectionError, HTTPClientError)):
        impatient_client(proxy.url).list_buckets()
    assert proxy.connections >= 1


def test_cut_after_drops_an_upload_midway(empty_moto, proxy):
    empty_moto.client().create_bucket(Bucket=BUCKET)
    proxy.set_mode("cut_after", bytes=10_000)

    with pytest.raises(HTTPClientError):
        impatient_client(proxy.url).put_object(Bucket=BUCKET, Key="cut", Body=b"x" * 200_000)

    assert empty_moto.keys(BUCKET) == []


def test_unreachable_makes_connecting_hang_until_the_mode_changes(proxy):
    open_connection = socket.create_connection(("127.0.0.1", proxy.port), timeout=2)

    proxy.set_mode("unreachable")

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=1)
    assert time.monotonic() - started >= 0.9  # not refused: the SYN got no answer
    with open_connection:
        try:
            assert open_connection.recv(1) == b""
        except ConnectionResetError:
            pass
    proxy.set_mode("pass")
    impatient_client(proxy.url).list_buckets()


def test_stall_after_goes_silent_midway_on_every_connection(empty_moto, proxy):
    empty_moto.client().create_bucket(Bucket=BUCKET)
    client = impatient_client(proxy.url)
    client.list_buckets()  # opens a pooled connection that then stalls with the rest
    proxy.set_mode("stall_after", bytes=10_000)

    with pytest.raises((ReadTimeoutError, HTTPClientError)):
        client.put_object(Bucket=BUCKET, Key="stalled", Body=b"x" * 8_000_000)
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=2) as late:
        late.sendall(b"GET / HTTP/1.1\r\nHost: moto\r\n\r\n")
        late.settimeout(0.5)
        with pytest.raises(TimeoutError):
            late.recv(1)

    proxy.set_mode("pass")
    assert empty_moto.keys(BUCKET) == []
    impatient_client(proxy.url).list_buckets()


def test_proxy_works_again_after_every_fault(empty_moto, proxy):
    for mode in ("refuse", "unreachable", "hang", "reset", "pass"):
        proxy.set_mode(mode)
    proxy.set_mode("cut_after", bytes=1)
    proxy.set_mode("stall_after", bytes=1)
    proxy.set_mode("pass")

    assert impatient_client(proxy.url).list_buckets()["Buckets"] == []


def test_proxy_rejects_unknown_modes_and_options(proxy):
    with pytest.raises(ValueError):
        proxy.set_mode("explode")
    with pytest.raises(ValueError):
        proxy.set_mode("cut_after")
    with pytest.raises(ValueError):
        proxy.set_mode("stall_after")
    with pytest.raises(ValueError):
        proxy.set_mode("hang", bytes=1)
    with pytest.raises(TypeError):
        proxy.set_mode("pass", delay=1)


def test_stop_closes_everything_and_leaves_no_thread(moto):
    proxy = FaultProxy("127.0.0.1", moto.port).start()
    proxy.set_mode("hang")
    hanging = socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
    hanging.sendall(b"GET / HTTP/1.1\r\nHost: moto\r\n\r\n")
    port = proxy.port

    proxy.stop()
    proxy.stop()

    assert proxy_threads() == []
    assert refuses_connections(port)
    with hanging:
        try:
            assert hanging.recv(1) == b""
        except ConnectionResetError:
            pass
