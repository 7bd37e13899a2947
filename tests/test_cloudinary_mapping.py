"""How stored names map to Cloudinary resources and delivery URLs (no network)."""

import pytest

from storage_backends.cloudinary import CloudinaryStorage


@pytest.fixture
def storage():
    return CloudinaryStorage(cloud_name="demo", api_key="123", api_secret="abc", upload_prefix="http://127.0.0.1:9")


@pytest.mark.parametrize(
    "name, resource",
    [
        ("videos/2026/11/clip_k2P9xQa.mp4", ("stremora/videos/2026/11/clip_k2P9xQa", "video", "mp4")),
        ("videos/2026/11/Clip.MOV", ("stremora/videos/2026/11/Clip", "video", "mov")),
        ("thumbnails/2026/11/poster.jpg", ("stremora/thumbnails/2026/11/poster", "image", "jpg")),
        ("videos/notes.txt", ("stremora/videos/notes.txt", "raw", None)),
    ],
)
def test_names_map_to_public_ids_under_the_project_folder(storage, name, resource):
    assert storage.resource_of(name) == resource


def test_url_is_built_locally(storage):
    assert storage.url("videos/2026/11/clip_k2P9xQa.mp4") == (
        "https://res.cloudinary.com/demo/video/upload/v1/stremora/videos/2026/11/clip_k2P9xQa.mp4"
    )
    assert storage.url("thumbnails/poster.png") == (
        "https://res.cloudinary.com/demo/image/upload/v1/stremora/thumbnails/poster.png"
    )


def test_repr_shows_no_credentials(storage):
    assert "abc" not in repr(storage) and "123" not in repr(storage)
