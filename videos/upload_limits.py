"""Refuse an oversized upload as its bytes arrive, before any of it is stored.

``UploadSizeLimitHandler`` is the first of Django's upload handlers for every request
(the API and the admin alike); ``UploadTooLargeMiddleware`` turns its error into a 413
for Django's views, the API's exception handler does the same for DRF's.
"""

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler
from django.http import HttpResponse

# Room for the multipart envelope and the other fields around the file.
ENVELOPE_ALLOWANCE = 1024 * 1024


class UploadTooLarge(Exception):
    def __init__(self):
        self.limit_mb = settings.MAX_UPLOAD_MB
        super().__init__(f"The upload is larger than the limit of {self.limit_mb} MB.")


def max_upload_bytes():
    return settings.MAX_UPLOAD_MB * 1024 * 1024


class UploadSizeLimitHandler(FileUploadHandler):
    """Counts each file's bytes and stops past MAX_UPLOAD_MB.

    A request that announces a larger body is refused before a byte of it is read; one
    that lies about its length is refused as soon as the count passes the limit.
    """

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        if content_length and content_length > max_upload_bytes() + ENVELOPE_ALLOWANCE:
            raise UploadTooLarge()
        self.received = 0

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > max_upload_bytes():
            raise UploadTooLarge()
        return raw_data

    def file_complete(self, file_size):
        self.received = 0
        return None


class UploadTooLargeMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        # Read a form post here, before CsrfViewMiddleware reads it, so that an oversized
        # upload is a 413 and not an error inside another middleware. Views that parse
        # their own bodies (DRF's, which are csrf-exempt) are left to do so.
        if request.method == "POST" and not getattr(view_func, "csrf_exempt", False):
            try:
                request.POST
            except UploadTooLarge as exc:
                return too_large_response(exc)
        return None

    def process_exception(self, request, exception):
        if isinstance(exception, UploadTooLarge):
            return too_large_response(exception)
        return None


def too_large_response(exc):
    return HttpResponse(str(exc), status=413, content_type="text/plain; charset=utf-8")
