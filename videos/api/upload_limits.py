"""Refuse an oversized upload as its bytes arrive, before any of it is stored."""

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler

from videos.api.errors import FileTooLarge


def max_upload_bytes():
    return settings.MAX_UPLOAD_MB * 1024 * 1024


class UploadSizeLimitHandler(FileUploadHandler):
    """First of the upload handlers: counts every file byte and stops past MAX_UPLOAD_MB.

    A request that announces a larger body is refused before a byte of it is read; one
    that lies about its length is refused as soon as the count passes the limit.
    """

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        # Room for the multipart envelope and the other fields around the file.
        if content_length and content_length > max_upload_bytes() + 1024 * 1024:
            raise FileTooLarge(settings.MAX_UPLOAD_MB)
        self.received = 0

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > max_upload_bytes():
            raise FileTooLarge(settings.MAX_UPLOAD_MB)
        return raw_data

    def file_complete(self, file_size):
        self.received = 0
        return None
