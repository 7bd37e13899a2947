"""A slow provider never holds every web worker: the requests that wait on a provider
take one of PROVIDER_WAIT_SLOTS slots of their machine, and with none free they are
refused at once with 503 and Retry-After (``videos.provider_slots``)."""

import secrets
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests
from rest_framework.authtoken.models import Token

import stremora_client
from stremora_client.resume import ResumeState
from tests.factories import sha256, video_bytes
from tests.fault_proxy import FaultProxy
from tests.stack import GunicornServer, site_environment, wait_until
from tests.test_upload_sessions import client_for, complete, send_all, start
from videos import metrics
from videos.models import UploadSession, Video
from videos.provider_slots import ProvidersBusy, provider_slot, slots_directory

BUCKET = "stremora-test"


@pytest.fixture
def one_slot(settings):
    settings.PROVIDER_WAIT_SLOTS = 1


def start_body(size=100_000):
    return {"filename": "clip.mp4", "size": size, "content_type": "video/mp4"}


def test_a_slot_is_given_back_when_its_request_fails(one_slot):
    with pytest.raises(RuntimeError):
        with provider_slot():
            raise RuntimeError("the provider call failed")
    with provider_slot():
        pass  # free again


def test_requests_hold_as_many_slots_as_set_and_no_more(settings):
    settings.PROVIDER_WAIT_SLOTS = 2
    with provider_slot():
        with provider_slot():
            with pytest.raises(ProvidersBusy):
                with provider_slot():
                    pass
        with provider_slot():
            pass  # the second slot is free again


def test_unset_there_is_no_limit(settings):
    settings.PROVIDER_WAIT_SLOTS = None
    with provider_slot(), provider_slot(), provider_slot():
        pass


def test_a_start_with_every_slot_held_is_refused_at_once_and_leaves_nothing(one_slot, s3_inprocess, settings, user):
    settings.STORAGE_PROVIDERS = ["s3"]
    api = client_for(user)
    refusals = metrics.BUSY_REFUSALS.labels(action="create")
    counted_before = refusals._value.get()
    with provider_slot():
        refused = api.post("/api/uploads/", start_body(), format="json")
    assert refused.status_code == 503
    assert refused["Retry-After"] == "1"
    assert "busy" in refused.json()["detail"]
    assert refusals._value.get() == counted_before + 1  # stremora_provider_slots_refused_total
    assert not UploadSession.objects.exists()
    assert s3_inprocess.list_multipart_uploads(Bucket=settings.AWS_S3_BUCKET_NAME).get("Uploads", []) == []

    started = api.post("/api/uploads/", start_body(), format="json")
    assert started.status_code == 201, started.content
    assert started.json()["provider"] == "s3"


def test_a_completion_in_the_request_with_every_slot_held_is_refused_and_can_be_asked_again(one_slot, settings, user):
    settings.STORAGE_PROVIDERS = ["local"]
    api = client_for(user)
    data = video_bytes(100_000)
    upload = start(api, data)
    send_all(api, upload, data)
    with provider_slot():
        refused = complete(api, upload)
    assert refused.status_code == 503 and refused["Retry-After"] == "1"
    assert UploadSession.objects.get(pk=upload["id"]).status == UploadSession.Status.UPLOADING
    assert not Video.objects.exists()

    completed = complete(api, upload)
    assert completed.status_code == 201, completed.content
    assert UploadSession.objects.get(pk=upload["id"]).status == UploadSession.Status.COMPLETED


def test_a_slot_held_by_a_process_that_dies_is_free_again(one_slot, db):
    slot_file = slots_directory() / "slot-0"
    holder = subprocess.Popen(
        [
            sys.executable, "-c",
            "import fcntl, os, sys, time; "
            f"descriptor = os.open({str(slot_file)!r}, os.O_RDWR | os.O_CREAT, 0o600); "
            "fcntl.flock(descriptor, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ProvidersBusy):
            with provider_slot():
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with provider_slot():
        pass


# Against gunicorn: 3 sync workers, so one slot (gunicorn.conf.py: half the workers), and
# S3 that never answers.


@pytest.mark.django_db(transaction=True)
def test_while_a_hanging_provider_holds_its_slot_the_other_workers_answer_and_the_client_waits_its_turn(
    s3_server, settings, media_root, user, tmp_path
):
    media_root.mkdir(parents=True, exist_ok=True)
    token = Token.objects.create(user=user).key
    auth = {"Authorization": f"Token {token}"}
    storage_timeout = 8  # long enough for the other requests to be tried meanwhile on a loaded machine
    with FaultProxy("127.0.0.1", s3_server.port) as s3_proxy:
        s3_proxy.set_mode("hang")  # the workers' first S3 call, CreateMultipartUpload, gets no answer
        environment = site_environment(
            secret_key=secrets.token_urlsafe(50), media_root=media_root, providers="s3,local",
            s3_url=s3_proxy.url, s3_settings=settings, bucket=BUCKET, STORAGE_TIMEOUT=storage_timeout,
        )
        server = GunicornServer(environment, workers=3).start()
        try:
            hanging = []

            def start_hanging():
                hanging.append(requests.post(f"{server.url}/api/uploads/", json=start_body(), headers=auth, timeout=60))

            starts = [threading.Thread(target=start_hanging)]
            for thread in starts:
                thread.start()
            wait_until(lambda: len(server.busy_worker_pids()) == 1, 10, "a worker waiting on S3")

            began = time.monotonic()
            refused = requests.post(f"{server.url}/api/uploads/", json=start_body(), headers=auth, timeout=60)
            refused_in = time.monotonic() - began
            began = time.monotonic()
            health = requests.get(f"{server.url}/api/health/", timeout=60)
            health_in = time.monotonic() - began
            assert not hanging, "the start holding the slot was answered before the others were tried"

            path = tmp_path / "clip.mp4"
            path.write_bytes(video_bytes(200_000))
            video = stremora_client.upload(
                path, url=server.url, token=token, title="Its turn", progress=False,
                state=ResumeState(tmp_path / "state.json"),
            )
            for thread in starts:
                thread.join()
        finally:
            server.stop()

    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1", refused.text
    assert "busy" in refused.json()["detail"]
    # Refused without a provider call: far sooner than the S3 wait the other one is in.
    assert refused_in < 2
    assert health.status_code == 200 and health_in < 2
    # The start that held the slot went to the next provider once S3 timed out.
    assert [answer.status_code for answer in hanging] == [201]
    assert hanging[0].json()["provider"] == "local"
    # The client was refused while the slots were held, asked again, and its video landed.
    stored = Video.objects.get(pk=video["id"])
    assert stored.storage_provider == "local" and stored.title == "Its turn"
    assert sha256((media_root / stored.file.name.partition(":")[2]).read_bytes()) == sha256(path.read_bytes())
    # The refused start left no session behind: the one that waited and the client's.
    assert UploadSession.objects.count() == 2
