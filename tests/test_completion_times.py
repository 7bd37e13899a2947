"""When a client waiting on a background completion is told to ask again: when the
provider's last large completions say it will be done (``videos.completion_times``)."""

import pytest

from videos import completion_times

MIB = 1024 * 1024


def test_a_smaller_upload_is_expected_to_take_the_last_large_ones_time_scaled_down_to_its_size():
    completion_times.record("s3", 64 * MIB, 3.0)

    assert completion_times.expected_seconds("s3", 64 * MIB) == 3.0
    assert completion_times.expected_seconds("s3", 16 * MIB) == 0.75
    assert completion_times.expected_seconds("cloudinary", 64 * MIB) is None  # learned per provider


def test_a_larger_upload_is_expected_to_take_no_longer_than_the_last_large_one():
    # Cloudinary's lookup and local disk's rename take as long for any size.
    completion_times.record("local", 64 * MIB, 2.0)

    assert completion_times.expected_seconds("local", 4096 * MIB) == 2.0


def test_the_median_of_the_last_five_large_completions_counts():
    for seconds in (30.0, 2.0, 3.0, 4.0, 40.0):
        completion_times.record("s3", 64 * MIB, seconds)
    assert completion_times.expected_seconds("s3", 64 * MIB) == 4.0  # one slow completion does not count alone

    completion_times.record("s3", 64 * MIB, 1.0)  # the oldest, 30 s, is forgotten
    assert completion_times.expected_seconds("s3", 64 * MIB) == 3.0


def test_small_completions_teach_nothing():
    completion_times.record("s3", completion_times.LEARN_FROM_BYTES - 1, 30.0)

    assert completion_times.expected_seconds("s3", 4096 * MIB) is None
    assert completion_times.retry_after("s3", 4096 * MIB, elapsed=0) is None


def test_a_client_asks_again_when_the_completion_should_be_done():
    completion_times.record("s3", 64 * MIB, 3.0)

    assert completion_times.retry_after("s3", 64 * MIB, elapsed=0) == 3.0
    assert completion_times.retry_after("s3", 64 * MIB, elapsed=2.25) == 0.75
    assert completion_times.retry_after("s3", 64 * MIB, elapsed=2.99) == completion_times.RETRY_AFTER_MIN == 0.1
    assert completion_times.retry_after("s3", 1 * MIB, elapsed=0) == completion_times.RETRY_AFTER_MIN


def test_the_clients_of_an_overdue_completion_ask_less_and_less_often():
    completion_times.record("s3", 64 * MIB, 3.0)

    waits = [completion_times.retry_after("s3", 64 * MIB, elapsed=3.0 + overdue) for overdue in (0.1, 0.5, 1.0, 30)]

    assert waits == [0.1, 0.25, 0.5, completion_times.OVERDUE_RETRY_MAX]


def test_the_wait_is_at_most_a_minute():
    completion_times.record("s3", 64 * MIB, 600.0)

    assert completion_times.retry_after("s3", 64 * MIB, elapsed=0) == completion_times.RETRY_AFTER_MAX == 60


def test_a_cache_that_cannot_be_reached_costs_the_hint_only(monkeypatch, caplog):
    from django.core.cache.backends.redis import RedisCache

    from tests.s3_server import free_port

    monkeypatch.setattr(completion_times, "cache", RedisCache(f"redis://127.0.0.1:{free_port()}/0", {}))

    completion_times.record("s3", 64 * MIB, 2.0)
    assert completion_times.retry_after("s3", 64 * MIB, elapsed=0) is None
    assert [record.getMessage() for record in caplog.records] == [
        "Could not record how long completing an upload took (ConnectionError)",
        "Could not read how long completing an upload takes (ConnectionError)",
    ]


@pytest.fixture(autouse=True)
def nothing_learned():
    from django.core.cache import cache

    cache.clear()
