import re

import pytest
from django.core.exceptions import SuspiciousFileOperation

from storage_backends.names import provider_of, qualify, split, unique_name


def test_unique_name_keeps_folder_and_extension():
    name = unique_name("videos/2026/11/holiday.mp4")

    assert re.fullmatch(r"videos/2026/11/holiday_[A-Za-z0-9]{7}\.mp4", name)
    assert unique_name("videos/2026/11/holiday.mp4") != name


def test_unique_name_fits_max_length():
    name = unique_name("videos/" + "a" * 200 + ".mp4", max_length=60)

    assert len(name) == 60
    assert name.startswith("videos/aaa") and name.endswith(".mp4")


def test_unique_name_refuses_path_traversal_and_impossible_lengths():
    with pytest.raises(SuspiciousFileOperation):
        unique_name("videos/../../etc/passwd")
    with pytest.raises(SuspiciousFileOperation):
        unique_name("videos/holiday.mp4", max_length=12)


@pytest.mark.parametrize("provider", ["cloudinary", "s3", "local"])
def test_qualified_names_round_trip(provider):
    name = qualify(provider, "videos/2026/11/clip_k2P9xQa.mp4")

    assert split(name) == (provider, "videos/2026/11/clip_k2P9xQa.mp4")
    assert provider_of(name) == provider


@pytest.mark.parametrize("legacy_name", ["videos/old.mp4", "ftp:videos/old.mp4", "clip.mp4"])
def test_names_without_a_known_prefix_are_cloudinarys(legacy_name):
    assert split(legacy_name) == ("cloudinary", legacy_name)
