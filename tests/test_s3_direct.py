"""Direct uploads to S3 against moto's server: parts PUT by a real HTTP client to presigned URLs."""

import base64
import time
import zlib
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from storage_backends.direct import DirectUploadRefused, Finished
from storage_backends.s3 import S3Storage
from storage_backends.s3_direct import MAX_PRESIGN_SECONDS, S3DirectUploads, part_size_for
from tests.factories import sha256, video_bytes
from tests.fault_proxy import FaultProxy
from tests.timing import attempt_bound

BUCKET = "stremora-test"
MIB = 1024 * 1024
KEY = "videos/2026/11/clip_AbC1234.mp4"
OBJECT_KEY = f"stremora/{KEY}"
# Three parts of 8 MiB, 8 MiB and 1 MiB.
SIZE = 17 * MIB


def storage_on(endpoint_url, timeout=5.0):
    return S3Storage(
        access_key="testing", secret_key="testing", bucket_name=BUCKET, endpoint_url=endpoint_url, timeout=timeout
    )


@pytest.fixture
def storage(s3_server):
    return storage_on(s3_server.url)


@pytest.fixture
def uploads(storage):
    return storage.direct_uploads


@pytest.fixture
def content():
    return video_bytes(SIZE)


def expiring_in(**delta):
    return datetime.now(timezone.utc) + timedelta(**delta)


def part_bytes(content, state, number):
    part_size = state["part_size"]
    return content[(number - 1) * part_size : number * part_size]


def put_parts(parts, content, state, body_of=part_bytes):
    """PUT each of ``parts`` ({"number", "url"}) as a client does; returns the report {"number", "etag"}."""
    report = []
    with requests.Session() as session:
        for part in parts:
            answer = session.put(part["url"], data=body_of(content, state, part["number"]), timeout=30)
            assert answer.status_code == 200, answer.text
            report.append({"number": part["number"], "etag": answer.headers["ETag"]})
    return report


def stored_bytes(s3_server, key=OBJECT_KEY):
    return s3_server.client().get_object(Bucket=BUCKET, Key=key)["Body"].read()


def expires_of(url):
    return int(parse_qs(urlsplit(url).query)["X-Amz-Expires"][0])


def test_the_s3_storage_takes_direct_uploads(storage):
    assert isinstance(storage.direct_uploads, S3DirectUploads)
    assert storage.direct_uploads.method == "s3-multipart"


@pytest.mark.parametrize(
    "size, part_size",
    [
        (1, 8 * MIB),
        (SIZE, 8 * MIB),
        (10_000 * 8 * MIB, 8 * MIB),
        (10_000 * 8 * MIB + 1, 9 * MIB),  # one byte more needs larger parts, in whole MiB
        (256 * 1024 * MIB, 27 * MIB),
    ],
)
def test_parts_are_whole_mib_of_at_least_8_and_at_most_ten_thousand(size, part_size):
    assert part_size_for(size) == part_size
    assert -(-size // part_size) <= 10_000


def test_a_direct_upload_stores_the_clients_bytes_under_the_project_prefix(uploads, s3_server, content):
    started = uploads.start(KEY, SIZE, "video/mp4", expires_at=expiring_in(hours=24))

    target, state = started.target, started.state
    assert target["method"] == "s3-multipart"
    assert (target["part_size"], target["part_count"]) == (8 * MIB, 3)
    assert state["part_size"] == 8 * MIB and state["part_count"] == 3 and state["upload_id"]
    assert [part["number"] for part in target["parts"]] == [1, 2, 3]
    report = put_parts(target["parts"], content, state)

    finished = uploads.finish(KEY, state, {"parts": report})

    assert finished == Finished(SIZE)
    assert s3_server.keys(BUCKET) == [OBJECT_KEY]
    assert sha256(stored_bytes(s3_server)) == sha256(content)
    head = s3_server.client().head_object(Bucket=BUCKET, Key=OBJECT_KEY)
    assert head["ContentType"] == "video/mp4"
    assert s3_server.multipart_uploads(BUCKET) == []


@pytest.mark.parametrize("declared", ["text/html", "image/svg+xml", "video/mp4; charset=utf-8", "", None])
def test_a_declared_type_other_than_a_video_type_is_not_served_by_s3(uploads, s3_server, declared):
    content = video_bytes(1024)
    started = uploads.start(KEY, len(content), declared, expires_at=expiring_in(hours=1))
    uploads.finish(KEY, started.state, {"parts": put_parts(started.target["parts"], content, started.state)})

    served = requests.get(uploads.probe_source(KEY), timeout=10).headers["Content-Type"]

    assert served == "binary/octet-stream"  # S3's own default


def test_the_target_signs_the_first_16_parts_and_the_client_asks_for_the_rest(uploads):
    size = 200 * MIB  # 25 parts of 8 MiB
    expires_at = expiring_in(hours=1)
    started = uploads.start(KEY, size, "video/mp4", expires_at=expires_at)
    assert started.state["part_count"] == 25
    assert [part["number"] for part in started.target["parts"]] == list(range(1, 17))

    signed = uploads.sign_parts(KEY, started.state, [17, 25], expires_at=expires_at)

    assert [part["number"] for part in signed] == [17, 25]
    for part in signed:
        url = urlsplit(part["url"])
        query = parse_qs(url.query)
        assert url.path == f"/{BUCKET}/{OBJECT_KEY}"
        assert query["partNumber"] == [str(part["number"])]
        assert query["uploadId"] == [started.state["upload_id"]]
        assert "X-Amz-Signature" in query
    fresh = uploads.target(KEY, started.state, expires_at=expires_at)
    assert fresh["part_count"] == 25 and [part["number"] for part in fresh["parts"]] == list(range(1, 17))


@pytest.mark.parametrize(
    "numbers",
    [[0], [26], [-1], ["3"], [3.0], [True], [], "3", list(range(1, 26)) * 5],
    ids=["zero", "past-the-last", "negative", "string", "float", "bool", "empty", "not-a-list", "over-100"],
)
def test_parts_outside_the_upload_or_too_many_at_once_are_refused(uploads, numbers):
    expires_at = expiring_in(hours=1)
    started = uploads.start(KEY, 200 * MIB, "video/mp4", expires_at=expires_at)

    with pytest.raises(DirectUploadRefused):
        uploads.sign_parts(KEY, started.state, numbers, expires_at=expires_at)


def test_a_hundred_parts_can_be_signed_at_once(uploads):
    expires_at = expiring_in(hours=1)
    started = uploads.start(KEY, 1024 * MIB, "video/mp4", expires_at=expires_at)  # 128 parts

    assert len(uploads.sign_parts(KEY, started.state, list(range(1, 101)), expires_at=expires_at)) == 100


def test_what_arrived_is_listed_so_a_client_can_resume(uploads, s3_server, content):
    started = uploads.start(KEY, SIZE, "video/mp4", expires_at=expiring_in(hours=1))
    state = started.state
    first_and_last = put_parts([started.target["parts"][0], started.target["parts"][2]], content, state)

    received = uploads.received(KEY, state)

    assert received.received_bytes == 8 * MIB + 1 * MIB
    assert received.parts == [
        {"number": 1, "size": 8 * MIB, "etag": first_and_last[0]["etag"].strip('"')},
        {"number": 3, "size": 1 * MIB, "etag": first_and_last[1]["etag"].strip('"')},
    ]
    missing = [part for part in started.target["parts"] if part["number"] not in (1, 3)]
    second = put_parts(missing, content, state)
    uploads.finish(KEY, state, {"parts": [first_and_last[0], second[0], first_and_last[1]]})
    assert sha256(stored_bytes(s3_server)) == sha256(content)


def test_what_arrived_is_listed_across_pages(uploads, storage, content):
    started = uploads.start(KEY, SIZE, "video/mp4", expires_at=expiring_in(hours=1))
    report = put_parts(started.target["parts"], content, started.state)

    def one_part_a_page(params, **kwargs):
        params["MaxParts"] = 1  # S3 answers at most 1,000 parts a page; a large upload has up to 10,000

    storage.connection.meta.client.meta.events.register("before-parameter-build.s3.ListParts", one_part_a_page)

    assert [part["number"] for part in uploads.received(KEY, started.state).parts] == [1, 2, 3]
    assert uploads.finish(KEY, started.state, {"parts": report}) == Finished(SIZE)


def short_first_part(content, state, number):
    """Part 1 is 6 MiB (moto takes parts of 5 MiB and more), the others as the target says."""
    body = part_bytes(content, state, number)
    return body[: 6 * MIB] if number == 1 else body


REFUSED_REPORTS = {
    # name: (how the client's report is made from the true one, words the refusal names)
    "a part missing": (lambda report: [report[0], report[2]], "missing from the list: 2"),
    "parts out of order": (lambda report: [report[1], report[0], report[2]], "part 1 comes after part 2"),
    "a part twice": (lambda report: [report[0], report[1], report[1], report[2]], "more than once: 2"),
    "a part the upload has not": (lambda report: [*report, {"number": 4, "etag": "x"}], "there is no part 4"),
    "a wrong etag": (
        lambda report: [report[0], {"number": 2, "etag": '"0123456789abcdef0123456789abcdef"'}, report[2]],
        "ETag of part 2 does not match",
    ),
    "no parts": (lambda report: None, '"parts" must list every part'),
    "a part without its etag": (lambda report: [report[0], {"number": 2}, report[2]], '"parts" must list every part'),
}


@pytest.mark.parametrize("case", [*REFUSED_REPORTS, "a part of the wrong size", "a part never sent"])
def test_a_report_that_does_not_match_the_parts_is_refused_and_the_upload_stays_abortable(
    uploads, s3_server, content, case
):
    started = uploads.start(KEY, SIZE, "video/mp4", expires_at=expiring_in(hours=1))
    state = started.state
    if case == "a part of the wrong size":
        report = put_parts(started.target["parts"], content, state, body_of=short_first_part)
        words = "Part 1 is 6291456 bytes; every part but the last is 8388608 bytes"
    elif case == "a part never sent":
        report = put_parts(started.target["parts"][:2], content, state)
        report.append({"number": 3, "etag": report[0]["etag"]})
        words = "S3 holds no part 3"
    else:
        change, words = REFUSED_REPORTS[case]
        report = change(put_parts(started.target["parts"], content, state))

    with pytest.raises(DirectUploadRefused) as refusal:
        uploads.finish(KEY, state, {"parts": report})

    assert words in str(refusal.value)
    assert s3_server.keys(BUCKET) == []
    assert [upload["UploadId"] for upload in s3_server.multipart_uploads(BUCKET)] == [state["upload_id"]]
    uploads.abort(KEY, state)
    assert s3_server.multipart_uploads(BUCKET) == []
    assert s3_server.keys(BUCKET) == []


def test_a_part_sent_again_while_the_upload_is_being_completed_is_refused(uploads, storage, s3_server, content):
    started = uploads.start(KEY, SIZE, "video/mp4", expires_at=expiring_in(hours=1))
    report = put_parts(started.target["parts"], content, started.state)

    def client_sends_part_2_again(**kwargs):  # after the parts were listed and checked
        put_parts([started.target["parts"][1]], bytes(len(content)), started.state)

    storage.connection.meta.client.meta.events.register(
        "before-call.s3.CompleteMultipartUpload", client_sends_part_2_again
    )

    with pytest.raises(DirectUploadRefused, match="The parts changed while the upload was being completed"):
        uploads.finish(KEY, started.state, {"parts": report})
    assert s3_server.keys(BUCKET) == []
    uploads.abort(KEY, started.state)
    assert s3_server.multipart_uploads(BUCKET) == []


def test_a_last_part_larger_than_the_part_size_is_refused(uploads, s3_server):
    size = 9 * MIB  # two parts: 8 MiB and 1 MiB
    content = video_bytes(size + 8 * MIB)
    started = uploads.start(KEY, size, "video/mp4", expires_at=expiring_in(hours=1))

    def whole_rest_as_last_part(content, state, number):
        return content[: 8 * MIB] if number == 1 else content[8 * MIB :]

    report = put_parts(started.target["parts"], content, started.state, body_of=whole_rest_as_last_part)

    with pytest.raises(DirectUploadRefused, match="The last part, 2, is 9437184 bytes"):
        uploads.finish(KEY, started.state, {"parts": report})
    assert s3_server.keys(BUCKET) == []


def test_finishing_again_answers_what_s3_holds(uploads, s3_server, content):
    started = uploads.start(KEY, SIZE, "video/mp4", expires_at=expiring_in(hours=1))
    report = put_parts(started.target["parts"], content, started.state)
    assert uploads.finish(KEY, started.state, {"parts": report}) == Finished(SIZE)

    assert uploads.finish(KEY, started.state, {"parts": report}) == Finished(SIZE)
    assert uploads.received(KEY, started.state).received_bytes == SIZE
    assert uploads.received(KEY, started.state).parts == []
    assert sha256(stored_bytes(s3_server)) == sha256(content)


def test_finishing_an_upload_that_was_aborted_finds_no_file(uploads, content):
    started = uploads.start(KEY, SIZE, "video/mp4", expires_at=expiring_in(hours=1))
    report = put_parts(started.target["parts"], content, started.state)
    uploads.abort(KEY, started.state)

    with pytest.raises(FileNotFoundError):
        uploads.finish(KEY, started.state, {"parts": report})
    with pytest.raises(FileNotFoundError):
        uploads.received(KEY, started.state)


def test_the_first_bytes_are_read_with_a_ranged_request(uploads, storage, content):
    started = uploads.start(KEY, SIZE, "video/mp4", expires_at=expiring_in(hours=1))
    uploads.finish(KEY, started.state, {"parts": put_parts(started.target["parts"], content, started.state)})
    ranges = []
    storage.connection.meta.client.meta.events.register(
        "before-send.s3.GetObject", lambda request, **kwargs: ranges.append(request.headers.get("Range"))
    )

    assert uploads.read_head(KEY, 64) == content[:64]
    assert [value.decode() if isinstance(value, bytes) else value for value in ranges] == ["bytes=0-63"]


def test_the_probe_reads_the_object_through_a_presigned_url(uploads, content):
    started = uploads.start(KEY, SIZE, "video/mp4", expires_at=expiring_in(hours=1))
    uploads.finish(KEY, started.state, {"parts": put_parts(started.target["parts"], content, started.state)})

    url = uploads.probe_source(KEY)

    assert urlsplit(url).path == f"/{BUCKET}/{OBJECT_KEY}" and "X-Amz-Signature" in parse_qs(urlsplit(url).query)
    answer = requests.get(url, headers={"Range": f"bytes={SIZE - 16}-{SIZE - 1}"}, timeout=10)
    assert answer.status_code == 206 and answer.content == content[-16:]


@pytest.mark.parametrize("hours_left, longest", [(2, 2 * 3600), (24 * 30, MAX_PRESIGN_SECONDS)])
def test_part_urls_expire_with_the_upload_and_within_a_week(uploads, hours_left, longest):
    expires_at = expiring_in(hours=hours_left)
    started = uploads.start(KEY, 200 * MIB, "video/mp4", expires_at=expires_at)
    urls = [part["url"] for part in started.target["parts"]]
    urls += [part["url"] for part in uploads.sign_parts(KEY, started.state, [20], expires_at=expires_at)]
    urls += [part["url"] for part in uploads.target(KEY, started.state, expires_at=expires_at)["parts"]]

    for url in urls:
        assert longest - 60 <= expires_of(url) <= longest
    assert MAX_PRESIGN_SECONDS == 7 * 24 * 3600


def test_abort_removes_the_parts_and_the_object(uploads, s3_server, content):
    unfinished = uploads.start(KEY, SIZE, "video/mp4", expires_at=expiring_in(hours=1))
    put_parts(unfinished.target["parts"][:2], content, unfinished.state)
    other_key = "videos/2026/11/other_XyZ9876.mp4"
    finished = uploads.start(other_key, SIZE, "video/mp4", expires_at=expiring_in(hours=1))
    uploads.finish(other_key, finished.state, {"parts": put_parts(finished.target["parts"], content, finished.state)})
    assert len(s3_server.multipart_uploads(BUCKET)) == 1 and len(s3_server.keys(BUCKET)) == 1

    uploads.abort(KEY, unfinished.state)
    uploads.abort(other_key, finished.state)

    assert s3_server.multipart_uploads(BUCKET) == []
    assert s3_server.keys(BUCKET) == []
    uploads.abort(KEY, unfinished.state)  # again: nothing left to remove is not an error


def test_direct_uploads_set_no_acl(uploads, storage, content):
    sent = []
    storage.connection.meta.client.meta.events.register(
        "before-send.s3", lambda request, **kwargs: sent.append(dict(request.headers))
    )
    started = uploads.start(KEY, SIZE, "video/mp4", expires_at=expiring_in(hours=1))
    uploads.finish(KEY, started.state, {"parts": put_parts(started.target["parts"], content, started.state)})

    assert sent  # CreateMultipartUpload, ListParts, CompleteMultipartUpload, HeadObject
    for headers in sent:
        assert not [name for name in headers if name.lower().startswith(("x-amz-acl", "x-amz-grant"))]
    for part in started.target["parts"]:
        assert not [name for name in parse_qs(urlsplit(part["url"]).query) if "acl" in name.lower()]


@pytest.fixture
def hanging_uploads(s3_server):
    """Direct uploads through a proxy in front of moto's server, with a short timeout."""
    with FaultProxy("127.0.0.1", s3_server.port) as proxy:
        yield proxy, storage_on(proxy.url, timeout=2.0).direct_uploads


DIRECT_CALLS = {
    "start": lambda uploads, state: uploads.start(KEY, SIZE, "video/mp4", expires_at=expiring_in(hours=1)),
    "received": lambda uploads, state: uploads.received(KEY, state),
    "finish": lambda uploads, state: uploads.finish(KEY, state, {"parts": [{"number": 1, "etag": "x"}]}),
    "read_head": lambda uploads, state: uploads.read_head(KEY, 64),
    "abort": lambda uploads, state: uploads.abort(KEY, state),
}


@pytest.mark.parametrize("call", DIRECT_CALLS)
@pytest.mark.parametrize("mode", ["hang", "unreachable"])
def test_a_call_to_an_s3_that_does_not_answer_fails_within_the_timeout(hanging_uploads, call, mode):
    proxy, uploads = hanging_uploads
    state = {"upload_id": "an-upload", "part_size": 8 * MIB, "part_count": 1}
    assert uploads.storage.connection.meta.client  # built before the clock starts
    proxy.set_mode(mode)

    started = time.monotonic()
    with pytest.raises(Exception):
        DIRECT_CALLS[call](uploads, state)
    elapsed = time.monotonic() - started

    assert elapsed < attempt_bound(uploads.storage.timeout)


@pytest.fixture
def s3_then_local(s3_server, settings, user, monkeypatch):
    """The API, S3 (behind a fault proxy, slow to time out) then local disk, and the
    server's own check of a provider bounded to a second."""
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    from videos import upload_sessions

    settings.STORAGE_PROVIDERS = ["s3", "local"]
    settings.STORAGE_TIMEOUT = 20
    monkeypatch.setattr(upload_sessions, "PROVIDER_CHECK_TIMEOUT", 1)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    with FaultProxy("127.0.0.1", s3_server.port) as proxy:
        settings.AWS_S3_ENDPOINT_URL = proxy.url
        yield api, proxy


def report_on_a_hanging_s3(api, proxy):
    """Start an upload on S3, make S3 hang, report it; returns the upload, the answer
    and how long it took."""
    upload = api.post("/api/uploads/", {"filename": "clip.mp4", "size": SIZE}, format="json").json()
    assert upload["provider"] == "s3"
    proxy.set_mode("refuse")  # the open connections closed,
    proxy.set_mode("hang")  # and the new ones never answered
    started = time.monotonic()
    moved = api.post(f"/api/uploads/{upload['id']}/fail/", {"reason": "timeout"}, format="json")
    return upload, moved, time.monotonic() - started


def test_a_report_on_an_s3_that_does_not_answer_the_server_either_moves_on_without_waiting_on_a_removal(
    s3_then_local, s3_server
):
    from datetime import timedelta

    from django.utils import timezone

    from videos import upload_sessions
    from videos.models import UploadSession

    api, proxy = s3_then_local
    upload, moved, elapsed = report_on_a_hanging_s3(api, proxy)

    assert moved.status_code == 200 and moved.json()["provider"] == "local"
    assert elapsed < 1 + 3  # the check's second and a margin, not the removal's 20 s
    session = UploadSession.objects.get(pk=upload["id"])
    assert [(attempt["provider"], attempt["removed"]) for attempt in session.tried] == [("s3", False)]
    assert s3_server.client().list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])  # left there, for now

    proxy.set_mode("pass")
    UploadSession.objects.filter(pk=session.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    upload_sessions.sweep_expired()

    assert s3_server.client().list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    assert UploadSession.objects.get(pk=session.pk).status == "expired"


def test_a_report_on_a_provider_whose_circuit_is_open_waits_on_no_check(s3_then_local, settings, monkeypatch):
    from storage_backends.breaker import CircuitBreaker
    from videos import upload_sessions

    api, proxy = s3_then_local
    monkeypatch.setattr(upload_sessions, "PROVIDER_CHECK_TIMEOUT", 5)
    upload = api.post("/api/uploads/", {"filename": "clip.mp4", "size": SIZE}, format="json").json()
    for _ in range(settings.STORAGE_BREAKER_FAILURES):
        CircuitBreaker("s3").record_failure("failing uploads")
    failures_before = CircuitBreaker("s3").record().last_failure
    proxy.set_mode("refuse")
    proxy.set_mode("hang")

    started = time.monotonic()
    moved = api.post(f"/api/uploads/{upload['id']}/fail/", {"reason": "timeout"}, format="json")
    elapsed = time.monotonic() - started

    assert moved.status_code == 200 and moved.json()["provider"] == "local"
    assert elapsed < 2  # no five-second check of a provider already known to fail
    assert CircuitBreaker("s3").record().last_failure == failures_before  # and nothing more counted


def crc32_of(data):
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def test_an_upload_with_part_checksums_signs_each_url_with_its_parts_crc32(s3_server, settings, user):
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    from videos.models import Video

    settings.STORAGE_PROVIDERS = ["s3"]
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    content = video_bytes(SIZE)
    state = {"part_size": 8 * MIB}
    start = {"filename": "clip.mp4", "size": SIZE, "content_type": "video/mp4"}

    refused = api.post("/api/uploads/", {**start, "part_checksum": "md5"}, format="json")
    assert refused.status_code == 400 and "part_checksum" in refused.json()
    upload = api.post("/api/uploads/", {**start, "part_checksum": "crc32"}, format="json").json()
    assert upload["target"]["checksum"] == "crc32" and upload["target"]["parts"] == []  # each URL needs its CRC32

    parts_url = f"/api/uploads/{upload['id']}/parts/"
    unsigned = api.post(parts_url, {"numbers": [1]}, format="json")
    assert unsigned.status_code == 400 and '"checksums"' in unsigned.json()["detail"]
    malformed = api.post(parts_url, {"numbers": [1], "checksums": ["not-b64!"]}, format="json")
    assert malformed.status_code == 400 and "base64" in malformed.json()["detail"]
    numbers = [1, 2, 3]
    checksums = [crc32_of(part_bytes(content, state, number)) for number in numbers]
    signed = api.post(parts_url, {"numbers": numbers, "checksums": checksums}, format="json")
    assert signed.status_code == 200, signed.content
    report = []
    with requests.Session() as session:
        for part, checksum in zip(signed.json()["parts"], checksums):
            assert "x-amz-checksum-crc32" in parse_qs(urlsplit(part["url"]).query)["X-Amz-SignedHeaders"][0]
            answer = session.put(
                part["url"], data=part_bytes(content, state, part["number"]),
                headers={"x-amz-checksum-crc32": checksum}, timeout=30,
            )
            assert answer.status_code == 200, answer.text
            report.append({"number": part["number"], "etag": answer.headers["ETag"]})

    completed = api.post(f"/api/uploads/{upload['id']}/complete/", {"title": "Checked", "parts": report}, format="json")

    assert completed.status_code == 201, completed.content
    video = Video.objects.get(pk=completed.json()["id"])
    assert sha256(stored_bytes(s3_server, "stremora/" + video.file.name.removeprefix("s3:"))) == sha256(content)


def test_the_completion_lists_the_crc32_s3_holds_for_each_part():
    assert S3DirectUploads._completed_part(2, (8 * MIB, "abc", "AAAAAA==")) == {
        "PartNumber": 2, "ETag": "abc", "ChecksumCRC32": "AAAAAA=="
    }
    assert S3DirectUploads._completed_part(3, (10, "def", None)) == {"PartNumber": 3, "ETag": "def"}


def test_an_upload_through_the_api_goes_straight_to_s3_and_becomes_a_video(s3_server, settings, user):
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    from videos.models import Video

    settings.STORAGE_PROVIDERS = ["s3", "local"]
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    content = video_bytes(SIZE)

    started = api.post(
        "/api/uploads/", {"filename": "clip.mp4", "size": SIZE, "content_type": "video/mp4"}, format="json"
    )
    assert started.status_code == 201, started.content
    upload = started.json()
    assert upload["provider"] == "s3"
    target = upload["target"]
    assert target["method"] == "s3-multipart" and (target["part_size"], target["part_count"]) == (8 * MIB, 3)
    state = {"part_size": target["part_size"]}
    report = put_parts([target["parts"][0], target["parts"][2]], content, state)
    resumed = api.get(f"/api/uploads/{upload['id']}/").json()
    assert resumed["received_bytes"] == 9 * MIB and [part["number"] for part in resumed["parts"]] == [1, 3]
    signed = api.post(f"/api/uploads/{upload['id']}/parts/", {"numbers": [2]}, format="json")
    assert signed.status_code == 200, signed.content
    report[1:1] = put_parts(signed.json()["parts"], content, state)

    completed = api.post(
        f"/api/uploads/{upload['id']}/complete/", {"title": "Straight to S3", "parts": report}, format="json"
    )

    assert completed.status_code == 201, completed.content
    video = Video.objects.get(pk=completed.json()["id"])
    assert video.storage_provider == "s3" and video.size_bytes == SIZE
    assert video.file.name.startswith("s3:videos/") and video.file.name.endswith(".mp4")
    object_key = "stremora/" + video.file.name.removeprefix("s3:")
    assert s3_server.keys(BUCKET) == [object_key]
    assert sha256(stored_bytes(s3_server, object_key)) == sha256(content)
    assert s3_server.multipart_uploads(BUCKET) == []
    assert api.get(f"/api/uploads/{upload['id']}/").json()["video"] == video.pk


def test_a_video_uploaded_straight_to_s3_gets_its_duration_and_poster_through_its_url(
    s3_server, settings, user, tmp_path
):
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    from tests.factories import real_video
    from videos.models import Video

    settings.STORAGE_PROVIDERS = ["s3", "local"]
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    content = real_video(tmp_path, seconds=2).read_bytes()
    upload = api.post(
        "/api/uploads/", {"filename": "clip.mp4", "size": len(content), "content_type": "video/mp4"}, format="json"
    ).json()
    report = put_parts(upload["target"]["parts"], content, {"part_size": upload["target"]["part_size"]})

    completed = api.post(
        f"/api/uploads/{upload['id']}/complete/", {"title": "Probed", "parts": report}, format="json"
    )

    assert completed.status_code == 201, completed.content
    video = Video.objects.get(pk=completed.json()["id"])
    assert video.storage_provider == "s3"
    assert video.duration_seconds == pytest.approx(2, abs=0.5)
    assert video.thumbnail


def test_every_thread_shares_one_client_and_a_background_thread_builds_none(storage, uploads, content):
    import threading

    started = uploads.start(KEY, len(content), "video/mp4", expires_at=expiring_in(hours=2))
    seen = {}

    def in_another_thread():
        uploads.received(KEY, started.state)
        uploads.probe_source(KEY)
        seen["client"] = uploads._client
        seen["built its own connection"] = getattr(storage._connections, "connection", None) is not None

    thread = threading.Thread(target=in_another_thread)
    thread.start()
    thread.join()

    assert seen["client"] is uploads._client
    assert seen["built its own connection"] is False
    uploads.abort(KEY, started.state)
