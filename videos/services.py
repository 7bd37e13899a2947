"""Operations on videos and their files, shared by the admin, the API and the commands."""

import mimetypes

from django.db import transaction

from videos.models import Video


def describe_file(uploaded_file) -> tuple[int, str]:
    """Size in bytes and MIME type of an uploaded file, the type judged by its name."""
    content_type, _ = mimetypes.guess_type(uploaded_file.name)
    return uploaded_file.size, content_type or "application/octet-stream"


@transaction.atomic
def save_video(video: Video, *, file_changed: bool) -> Video:
    """Save ``video``; when its file is new, record the file's size and type with it."""
    if file_changed and video.file:
        video.size_bytes, video.content_type = describe_file(video.file)
    video.save()
    return video
