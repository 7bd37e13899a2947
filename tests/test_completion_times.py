"""The hint a background completion's 202 carries: how long the provider took to
complete the last large upload, scaled down to a smaller file (``videos.completion_times``)."""

import pytest

from videos import completion_times

MIB = 1024 * 1024


def test_a_smaller_upload_is_told_the_last_large_ones_time_scaled_down_to_its_size():
    completion_times.record("s3", 64 * MIB, 3.0)

    assert completion_times.retry_after("s3", 64 * MIB) == 3
    assert completion_times.retry_after("s3", 50 * MIB) == 2  # 2.3 s expected: the nearest whole second
    assert completion_times.retry_after("s3", 12 * MIB) == 1  # 0.56 s
    assert completion_times.retry_after("s3", 10 * MIB) is None  # 0.47 s: ask from the start
    assert completion_times.retry_after("cloudinary", 64 * MIB) is None  # learned per provider


def test_a_larger_upload_is_told_no_more_than_the_last_large_one_took():
    # Cloudinary's lookup and local disk's rename take as long for any size.
    completion_times.record("local", 64 * MIB, 2.0)

    assert completion_times.retry_after("local", 4096 * MIB) == 2


def test_the_median_of_the_last_five_large_completions_counts():
    for seconds in (30.0, 2.0, 3.0, 4.0, 40.0):
        completion_times.record("s3", 64 * MIB, seconds)
    assert completion_times.retry_after("s3", 64 * MIB) == 4  # one slow completion does not count alone

    completion_times.record("s3", 64 * MIB, 1.0)  # the oldest, 30 s, is forgotten
    assert completion_times.retry_after("s3", 64 * MIB) == 3


def test_small_completions_teach_nothing():
    completion_times.record("s3", completion_times.LEARN_FROM_BYTES - 1, 30.0)

    assert completion_times.retry_after("s3", 4096 * MIB) is None


def test_the_hint_is_at_most_a_minute():
    completion_times.record("s3", 64 * MIB, 600.0)

    assert completion_times.retry_after("s3", 64 * MIB) == completion_times.MAX_HINT_SECONDS == 60


def test_a_cache_that_cannot_be_reached_costs_the_hint_only(monkeypatch, caplog):
    from django.core.cache.backends.redis import RedisCache

    from tests.s3_server import free_port

    monkeypatch.setattr(completion_times, "cache", RedisCache(f"redis://127.0.0.1:{free_port()}/0", {}))

    completion_times.record("s3", 64 * MIB, 2.0)
    assert completion_times.retry_after("s3", 64 * MIB) is None
    assert [record.getMessage() for record in caplog.records] == [
        "Could not record how long completing an upload took (ConnectionError)",
        "Could not read how long completing an upload takes (ConnectionError)",
    ]


@pytest.fixture(autouse=True)
def nothing_learned():
    from django.core.cache import cache

    cache.clear()
