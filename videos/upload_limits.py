"""What request bodies the server reads, and how much of them.

Only the video uploads (``upload_kind``) take a large body, and only from a caller
already known to be allowed to send it: the API's token or session (DRF authenticates
before it parses), a staff session for the admin, and for a session its CSRF token in
the ``X-CSRFToken`` header, checked before the body is read. Every other address refuses
a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` by its Content-Length, unread (413); a body
without a Content-Length is refused (411). ``RequestBodyMiddleware`` decides all this,
and paces every body read (``videos.body_pacing``).

``UploadSizeLimitHandler`` is the first of Django's upload handlers for every request
(the API and the admin alike): it refuses an upload over MAX_UPLOAD_MB as its bytes
arrive, before any of it is stored.
"""

import copy

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler
from django.http import HttpResponse, QueryDict, UnreadablePostError
from django.middleware.csrf import CsrfViewMiddleware
from django.template.defaultfilters import filesizeformat

from videos.body_pacing import UnreadableBody, paced_body

# Room for the multipart envelope and the other fields around the file.
ENVELOPE_ALLOWANCE = 1024 * 1024


class UploadTooLarge(Exception):
    def __init__(self):
        self.limit_mb = settings.MAX_UPLOAD_MB
        super().__init__(f"The upload is larger than the limit of {self.limit_mb} MB.")


def max_upload_bytes():
    return settings.MAX_UPLOAD_MB * 1024 * 1024


def too_large_for_providers(size, largest):
    """Why a file larger than every configured provider takes (``largest`` bytes) is refused: a 413."""
    return (
        f"The file is {filesizeformat(size)}; no storage provider takes a file larger than "
        f"{largest // (1024 * 1024)} MB."
    )


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



# The requests that may carry a video: the actions a DRF viewset names in its
# ``large_body_actions`` (an action, not a URL name, says what a view does with a
# body), and the admin's video forms, which also need a staff session.
ADMIN_UPLOAD_URLS = {"admin:videos_video_add", "admin:videos_video_change"}

LENGTH_REQUIRED = (
    "A request body needs a Content-Length header: this server does not read chunked transfer encoding. "
    "Send the upload with its length (curl -F or --data-binary @FILE do)."
)

# Errors met reading a body: the request is refused and nothing of it is used.
BODY_ERRORS = (UploadTooLarge, UnreadableBody, UnreadablePostError)
CONNECTION_LOST = "The request body could not be read (the connection was lost). Nothing was stored."


class RequestBodyMiddleware:
    """Reads a request's body only when it may be read; see the module's docstring.

    Sits before CsrfViewMiddleware, which reads form posts: the decision comes first, and
    a form post is then read here so that an oversized, slow or cut-off one is a clean 4xx
    and not an error inside another middleware. Views that parse their own bodies (DRF's,
    which are csrf-exempt) are left to do so.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with paced_body(request.environ):
            return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if "HTTP_TRANSFER_ENCODING" in request.META and not request.META.get("CONTENT_LENGTH"):
            return text_response(411, LENGTH_REQUIRED)
        small_limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if small_limit is not None and content_length(request) > small_limit:
            kind = upload_kind(request, view_func)
            if kind is None:
                return text_response(
                    413,
                    f"This address accepts a request body of at most {filesizeformat(small_limit)}; "
                    "the body was not read.",
                )
            refusal = refuse_upload_before_reading(request, kind)
            if refusal is not None:
                return refusal
        if request.method == "POST" and not getattr(view_func, "csrf_exempt", False):
            try:
                request.POST
            except BODY_ERRORS as exc:
                return body_error_response(request, exc)
        return None

    def process_exception(self, request, exception):
        if isinstance(exception, BODY_ERRORS):
            return body_error_response(request, exception)
        return None


def content_length(request):
    try:
        return max(int(request.META.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        return 0


def upload_kind(request, view_func):
    """``"admin"`` or ``"api"`` when this request may carry a video, else None."""
    if request.method == "POST" and request.resolver_match.view_name in ADMIN_UPLOAD_URLS:
        return "admin"
    actions = getattr(view_func, "actions", None) or {}  # a DRF viewset's method -> action
    if actions.get(request.method.lower()) in getattr(getattr(view_func, "cls", None), "large_body_actions", ()):
        return "api"
    return None


def refuse_upload_before_reading(request, kind):
    """A response refusing a large upload from a caller not allowed to send it, or None.

    Decided from the headers alone. Token callers of the API are left to DRF, which
    authenticates before it parses (an unknown token is a 401, the body unread).
    """
    user = request.user
    if kind == "admin" and not (user.is_active and user.is_staff):
        return text_response(403, "Sign in as staff to upload in the admin; the body was not read.")
    if user.is_authenticated and (kind == "admin" or "HTTP_AUTHORIZATION" not in request.META):
        return csrf_refusal_from_headers(request)
    return None


def csrf_refusal_from_headers(request):
    """CSRF of a session's upload, checked with the token from the X-CSRFToken header only."""
    probe = copy.copy(request)
    probe.POST = QueryDict()  # the body stays unread: the form's token cannot count
    if CsrfViewMiddleware(lambda _: None).process_view(probe, None, (), {}) is None:
        return None
    return text_response(
        403,
        "CSRF verification failed: an upload this large must carry its CSRF token in the X-CSRFToken header, "
        "so that it is checked before the body is read. The body was not read.",
    )


def refuse_body(request, exc):
    """``(status, message)`` of the 4xx for an error in ``BODY_ERRORS`` met reading a
    body; what was spooled of the body is removed."""
    discard_partial_uploads(request)
    if isinstance(exc, UploadTooLarge):
        return 413, str(exc)
    if isinstance(exc, UnreadableBody):
        return exc.status, str(exc)
    return 400, CONNECTION_LOST


def body_error_response(request, exc):
    return text_response(*refuse_body(request, exc))


def discard_partial_uploads(request):
    """Remove the temporary file of an upload stopped midway: Django closes only finished ones."""
    for handler in request.upload_handlers:
        partial = getattr(handler, "file", None)
        if partial is not None:
            partial.close()


def text_response(status, message):
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")
