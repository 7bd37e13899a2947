"""Small builders for test data."""

from django.core.files.uploadedfile import SimpleUploadedFile

# The first bytes of an MP4 file: an ftyp box naming the isom brand.
MP4_HEADER = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41"


def video_upload(name="clip.mp4", size=4096):
    body = MP4_HEADER + b"\x00" * max(0, size - len(MP4_HEADER))
    return SimpleUploadedFile(name, body, content_type="video/mp4")
