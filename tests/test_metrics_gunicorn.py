"""/metrics scraped from the real gunicorn with several workers: every worker's counts
add up (prometheus-client's multiprocess mode, set up by gunicorn.conf.py with no
variable set), and an anonymous scrape is refused."""

import re
import secrets
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from tests.factories import video_bytes
from tests.fault_proxy import FaultProxy
from tests.stack import GunicornServer, site_environment
from tests.test_metrics import samples, value

pytestmark = pytest.mark.django_db(transaction=True)

BUCKET = "stremora-test"
WORKERS = 3
BATCH = 6  # uploads sent at once: more than the workers, so that several serve them
MAX_BATCHES = 4
METRICS_TOKEN = secrets.token_urlsafe(32)
# gunicorn's access log, with the pid of the worker that served each request.
ACCESS_LOG = ("--access-logfile", "-", "--access-logformat", 'pid=%(p)s "%(r)s" %(s)s')


def upload(site, token):
    response = requests.post(
        f"{site.url}/api/videos/",
        headers={"Authorization": f"Token {token}"},
        data={"title": "Clip"},
        files={"file": ("clip.mp4", video_bytes(20_000), "video/mp4")},
        timeout=60,
    )
    assert response.status_code == 201, response.text
    return response.json()


def upload_batch(site, token):
    with ThreadPoolExecutor(BATCH) as pool:
        return list(pool.map(lambda _: upload(site, token), range(BATCH)))


def upload_workers(site):
    """The pids of the workers that answered an upload, from the access log."""
    return set(re.findall(r'^pid=<(\d+)> "POST /api/videos/ HTTP/1.1" 201', site.log(), re.MULTILINE))


def test_a_scrape_adds_up_the_uploads_every_worker_served(settings, s3_server, media_root):
    media_root.mkdir(parents=True, exist_ok=True)
    token = Token.objects.create(user=get_user_model().objects.create_user("uploader", password="pw-uploader-1")).key
    with FaultProxy("127.0.0.1", s3_server.port) as s3_proxy:
        environment = site_environment(
            secret_key=secrets.token_urlsafe(50),
            media_root=media_root,
            providers="s3,local",
            s3_url=s3_proxy.url,
            s3_settings=settings,
            bucket=BUCKET,
            STORAGE_TIMEOUT=2,
            STORAGE_BREAKER_FAILURES=1000,  # every fallback a fault of S3's, none a skip
            METRICS_TOKEN=METRICS_TOKEN,
        )
        with GunicornServer(environment, workers=WORKERS, options=ACCESS_LOG) as site:
            on_s3 = upload_batch(site, token)
            s3_proxy.set_mode("refuse")
            fell_back = upload_batch(site, token)
            for _ in range(MAX_BATCHES - 1):
                if len(upload_workers(site)) > 1:
                    break
                fell_back += upload_batch(site, token)

            served_by = upload_workers(site)
            scrape = requests.get(f"{site.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10)
            anonymous = requests.get(f"{site.url}/metrics", timeout=10)

    assert len(served_by) > 1, site.log()
    assert {video["storage_provider"] for video in on_s3} == {"s3"}
    assert {video["storage_provider"] for video in fell_back} == {"local"}

    assert scrape.status_code == 200, scrape.text
    scraped = samples(scrape.text)
    uploads = {labels: count for (name, labels), count in scraped.items() if name == "stremora_uploads_total"}
    assert sum(uploads.values()) == len(on_s3) + len(fell_back)
    assert value(scraped, "stremora_uploads_total", provider="s3", outcome="stored", via="upload") == len(on_s3)
    assert value(scraped, "stremora_uploads_total", provider="local", outcome="stored", via="upload") == len(fell_back)
    assert value(
        scraped, "stremora_fallbacks_total", from_provider="s3", to_provider="local", kind="fault"
    ) == len(fell_back)
    assert value(scraped, "stremora_provider_call_seconds_count", provider="s3", operation="save") == len(
        on_s3
    ) + len(fell_back)
    assert value(scraped, "stremora_provider_call_seconds_count", provider="local", operation="save") == len(fell_back)
    assert value(scraped, "stremora_provider_call_seconds_sum", provider="s3", operation="save") > 0
    assert value(scraped, "stremora_videos", provider="s3") == len(on_s3)

    assert anonymous.status_code == 404 and "stremora_" not in anonymous.text
