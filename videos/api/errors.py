"""API errors beyond DRF's own: storage unavailable, an oversized, slow or cut-off upload,
and a direct upload's refusals (``videos.upload_sessions``)."""

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.views import exception_handler as drf_exception_handler

from storage_backends.errors import StorageUnavailable, TooLargeForProviders
from videos import upload_sessions
from videos.upload_limits import BODY_ERRORS, refuse_body, too_large_for_providers

# Seconds to wait before asking again when an upload's provider did not answer.
PROVIDER_UNREACHABLE_WAIT = 5


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


class Refused(APIException):
    """A 4xx whose status the refusal chose: a body cut off or not arriving whole
    (nothing of it is used), or a direct upload's request that does not fit it."""

    def __init__(self, detail, status_code, code):
        super().__init__(detail, code)
        self.status_code = status_code


def exception_handler(exc, context):
    if isinstance(exc, BODY_ERRORS):
        status_code, message = refuse_body(context["request"], exc)
        exc = FileTooLarge(message) if status_code == 413 else Refused(message, status_code, "body_not_read")
    elif isinstance(exc, upload_sessions.UploadRefused):
        exc = Refused(str(exc), exc.status, "upload_refused")
    elif isinstance(exc, upload_sessions.NoProviderAvailable):
        exc = ProviderUnavailable(str(exc), wait=exc.retry_after)
    elif isinstance(exc, upload_sessions.ProviderUnreachable):
        exc = ProviderUnavailable(str(exc), wait=PROVIDER_UNREACHABLE_WAIT)
    if isinstance(exc, TooLargeForProviders):
        exc = FileTooLarge(too_large_for_providers(exc.size, exc.largest))
    elif isinstance(exc, StorageUnavailable):
        # The providers' reasons go to the log (the chain logged them); the client
        # learns only that storage is down and when to try again.
        exc = ProviderUnavailable(wait=settings.STORAGE_BREAKER_COOLDOWN)
    return drf_exception_handler(exc, context)
