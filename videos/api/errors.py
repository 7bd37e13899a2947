"""API errors beyond DRF's own: storage unavailable, an oversized, slow or cut-off upload,
and a direct upload's refusals (``videos.upload_sessions``); and ``ANSWERS``, how each
error answer reads, for the OpenAPI schema (``videos.api.schema``)."""

from django.conf import settings
from django.http import JsonResponse
from django.views import defaults
from drf_spectacular.utils import OpenApiExample, OpenApiResponse
from rest_framework import serializers, status
from rest_framework.exceptions import APIException
from rest_framework.views import exception_handler as drf_exception_handler

from storage_backends.errors import StorageUnavailable, TooLargeForProviders
from videos import metrics, upload_sessions
from videos.provider_slots import ProvidersBusy
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
    elif isinstance(exc, ProvidersBusy):
        metrics.BUSY_REFUSALS.labels(action=getattr(context.get("view"), "action", None) or "other").inc()
        exc = ProviderUnavailable(str(exc), wait=exc.retry_after)
    if isinstance(exc, TooLargeForProviders):
        exc = FileTooLarge(too_large_for_providers(exc.size, exc.largest))
    elif isinstance(exc, StorageUnavailable):
        # The providers' reasons go to the log (the chain logged them); the client
        # learns only that storage is down and when to try again.
        exc = ProviderUnavailable(wait=settings.STORAGE_BREAKER_COOLDOWN)
    return drf_exception_handler(exc, context)


def page_not_found(request, exception):
    """The site's 404 (``handler404``): under /api/ in the API's own form, for an address
    that matches no route (``/api/videos/abc/``) as for an object that does not exist."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


# -- the error answers, as the schema documents them -------------------------------


class ErrorSerializer(serializers.Serializer):
    """An error about the request as a whole."""

    detail = serializers.CharField()


# A 400's body: each field's messages (a nested field's, nested), or ``detail`` when the
# request as a whole was refused.
FIELD_ERRORS = {
    "type": "object",
    "additionalProperties": {"anyOf": [{"type": "string"}, {"type": "array"}, {"type": "object"}]},
}


def _detail(name, detail):
    return OpenApiExample(name, value={"detail": detail})


ANSWERS = {
    400: OpenApiResponse(
        FIELD_ERRORS,
        "Bad input: the messages of each field at fault, or `detail`. Nothing was stored.",
        [
            OpenApiExample("A field", value={"title": ["This field is required."]}),
            OpenApiExample("Not a video", value={"file": ["The file is not a video: its content is image/png."]}),
            OpenApiExample("A filter", value={"is_published": ["Enter true or false."]}),
            _detail("The request", "A chunk needs a Content-Range header: bytes FIRST-LAST/TOTAL."),
        ],
    ),
    401: OpenApiResponse(
        ErrorSerializer,
        "The token or session is not valid, or the operation needs one.",
        [_detail("Bad token", "Invalid token."), _detail("No credentials", "Authentication credentials were not provided.")],
    ),
    403: OpenApiResponse(
        ErrorSerializer,
        "Not allowed: only a video's owner or staff may change it; a session needs its CSRF token.",
        [_detail("Not the owner", "You do not have permission to perform this action.")],
    ),
    404: OpenApiResponse(
        ErrorSerializer,
        "No such object for this user (an upload is its creator's alone), or no such page of results.",
        [_detail("Missing", "No Video matches the given query."), _detail("Past the last page", "Invalid page.")],
    ),
    409: OpenApiResponse(
        ErrorSerializer,
        "The upload is being completed or is completed already.",
        [_detail("Completed", "This upload is being completed or is completed already.")],
    ),
    410: OpenApiResponse(
        ErrorSerializer,
        "The upload expired or was abandoned: start a new one.",
        [_detail("Expired", "This upload expired or was abandoned; start a new one with POST /api/uploads/.")],
    ),
    411: OpenApiResponse(
        ErrorSerializer, "A body sent without a Content-Length (chunked transfer encoding is not read)."
    ),
    413: OpenApiResponse(
        ErrorSerializer,
        "The file is over `MAX_UPLOAD_MB`, or the body is larger than this operation takes. Nothing was stored.",
        [_detail("Over the limit", "The file is 3.0 GB, larger than the limit of 2048 MB.")],
    ),
    415: OpenApiResponse(
        ErrorSerializer,
        "The body is in a media type this operation does not take.",
        [_detail("Wrong type", 'Unsupported media type "text/plain" in request.')],
    ),
    429: OpenApiResponse(
        ErrorSerializer,
        "Too many requests (`Retry-After` tells when to ask again), or too many direct uploads open at once.",
        [
            _detail("Throttled", "Request was throttled. Expected available in 42 seconds."),
            _detail(
                "Uploads open",
                "You have 10 uploads open, the most one account may have: complete or abandon "
                "(DELETE /api/uploads/ID/) one first.",
            ),
        ],
    ),
    503: OpenApiResponse(
        ErrorSerializer,
        "No storage provider could take the file or answer now: try again after `Retry-After` seconds.",
        [_detail("Storage down", ProviderUnavailable.default_detail)],
    ),
}

# Answers with a Retry-After header: the seconds to wait before asking again.
RETRY_AFTER = {429, 503}
# Answers the server may give as plain text, refusing a body before it is read
# (videos.upload_limits): a large body from a caller not allowed to send it, or too large.
PLAIN_TEXT = {403, 411, 413}


def answers(*statuses):
    """``extend_schema(responses=...)`` entries for these error answers."""
    return {status_code: ANSWERS[status_code] for status_code in statuses}
