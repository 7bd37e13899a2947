"""Many uploads at once while Cloudinary fails at random: every row tells the truth.

Cloudinary is the test server, S3 is moto's server in its own process, and each
upload runs in its own thread with its own database connection.
"""

import hashlib
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from tests.factories import MP4_HEADER
from videos.models import PendingDeletion, Video

UPLOADS = 60
THREADS = 12


def upload(number, owner):
    body = MP4_HEADER + f"upload {number} ".encode() * (50 + number)
    try:
        video = Video.objects.create(
            title=f"Upload {number}",
            owner=owner,
            file=SimpleUploadedFile(f"clip{number}.mp4", body, content_type="video/mp4"),
        )
        return video.pk, hashlib.sha256(body).hexdigest()
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_each_video_records_where_its_file_really_is(settings, cloudinary_server, s3_server, user):
    settings.STORAGE_PROVIDERS = ["cloudinary", "s3"]
    settings.STORAGE_BREAKER_FAILURES = 10_000  # keep Cloudinary in play for every upload
    cloudinary_server.fail("http_500", actions=["upload"], probability=0.3, seed=7)
    cloudinary_server.fail("rate_limit", actions=["upload"], probability=0.2, seed=8)
    cloudinary_server.fail("drop", actions=["upload"], probability=0.1, seed=9)

    with ThreadPoolExecutor(THREADS) as pool:
        sent = dict(pool.map(upload, range(UPLOADS), [user] * UPLOADS))

    videos = list(Video.objects.all())
    assert len(videos) == len(sent) == UPLOADS
    by_provider = {"cloudinary": set(), "s3": set()}
    for video in videos:
        provider, _, key = video.file.name.partition(":")
        assert video.storage_provider == provider
        by_provider[provider].add(key)
        with video.file.open("rb") as stored:
            assert hashlib.sha256(stored.read()).hexdigest() == sent[video.pk]

    assert by_provider["cloudinary"] and by_provider["s3"], "random faults should split the uploads"
    # Every stored file is a video's, or one whose upload failed after it may have landed
    # (its answer lost or late on a loaded machine), queued for removal and no video's.
    queued = {"cloudinary": set(), "s3": set()}
    for name in PendingDeletion.objects.values_list("name", flat=True):
        provider, _, key = name.partition(":")
        queued[provider].add(key)
    assert not queued["cloudinary"] & by_provider["cloudinary"] and not queued["s3"] & by_provider["s3"]

    def public_ids(keys):
        return {"stremora/" + key.removesuffix(".mp4") for key in keys}

    stored_on_cloudinary = {public_id for _, public_id in cloudinary_server.resources()}
    assert stored_on_cloudinary - public_ids(queued["cloudinary"]) == public_ids(by_provider["cloudinary"])
    stored_on_s3 = set(s3_server.keys("stremora-test"))
    assert stored_on_s3 - {"stremora/" + key for key in queued["s3"]} == {"stremora/" + key for key in by_provider["s3"]}
    assert s3_server.multipart_uploads("stremora-test") == []
