"""API errors beyond DRF's own: storage unavailable, an oversized upload."""

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.views import exception_handler as drf_exception_handler

from storage_backends.errors import StorageUnavailable
from videos.upload_limits import UploadTooLarge


class ProviderUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "No storage provider could store the file. Try again later."
    default_code = "storage_unavailable"

    def __init__(self, detail=None, wait=None):
        super().__init__(detail)
        # DRF's handler turns ``wait`` into a Retry-After header.
        self.wait = wait


class FileTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "file_too_large"


def exception_handler(exc, context):
    if isinstance(exc, UploadTooLarge):
        exc = FileTooLarge(str(exc))
    if isinstance(exc, StorageUnavailable):
        # The providers' reasons go to the log (the chain logged them); the client
        # learns only that storage is down and when to try again.
        exc = ProviderUnavailable(wait=settings.STORAGE_BREAKER_COOLDOWN)
    return drf_exception_handler(exc, context)
