"""The public pages: published videos, a watch page, and local-disk files with byte
ranges; and /metrics, which is not public."""

import errno
import ipaddress
import logging
import secrets
import time

from django.conf import settings
from django.core import signing
from django.core.exceptions import SuspiciousFileOperation
from django.http import Http404, HttpResponse, HttpResponseBadRequest, HttpResponseForbidden, HttpResponseNotAllowed
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.generic import DetailView, ListView
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

from storage_backends import providers
from storage_backends.names import qualify
from videos import metrics as video_metrics
from videos import services
from videos.api.filters import SEARCH_FIELDS, BoundedSearchFilter
from videos.models import StorageProvider, Video
from videos.ranges import ranged_file_response

logger = logging.getLogger(__name__)

# Headers a proxy adds: a request that carries one came through a proxy, whatever the
# address of the connection.
FORWARDING_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")

# A name that is no file here: missing, a folder, under a file, or longer than a name can be.
MISSING_FILE_ERRORS = {errno.ENOENT, errno.EISDIR, errno.ENOTDIR, errno.ENAMETOOLONG}


class VideoListView(ListView):
    """Published videos, newest first; ``?search=`` finds them as the API's search does."""

    template_name = "videos/video_list.html"
    context_object_name = "videos"
    paginate_by = 24
    search_fields = SEARCH_FIELDS  # read by BoundedSearchFilter

    def get_queryset(self):
        videos = Video.objects.filter(is_published=True).select_related("owner")
        self.search = self.request.GET.get("search", "").strip()
        self.search_error = None
        try:
            return BoundedSearchFilter().filter_queryset(Request(self.request), videos, self)
        except ValidationError as exc:
            self.search_error = next(iter(exc.detail.values()))[0]
            return videos.none()

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["search"] = self.search
        context["search_error"] = self.search_error
        for video in context["videos"]:
            video.poster = services.poster_url(video)
        return context


class VideoWatchView(DetailView):
    template_name = "videos/watch.html"
    context_object_name = "video"

    def get_queryset(self):
        return Video.objects.visible_to(self.request.user).select_related("owner")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        video = context["video"]
        video.poster = services.poster_url(video)
        context["video_url"] = services.file_url(video.file)
        return context


def local_media(request, path):
    """A file of the local provider, with Range support so that players can seek.

    A file of a published video is served to anyone; any other file only through a
    signed URL (``services.stored_file_url``) until it expires. Other requests get a
    404 whether or not the file exists.
    """
    if "\x00" in path:
        return HttpResponseBadRequest("A file name cannot contain a null character.", content_type="text/plain")
    storage = providers.get_storage("local")
    try:
        signed_until = storage.check_signature(path, request.GET.get("expires"), request.GET.get("signature"))
    except signing.BadSignature as exc:
        if not services.is_public_file(qualify(StorageProvider.LOCAL, path)):
            if isinstance(exc, signing.SignatureExpired):
                return HttpResponseForbidden(
                    "This link has expired: reload the page for a new one.", content_type="text/plain"
                )
            raise Http404("No such file") from None
        signed_until = None
    try:
        response = ranged_file_response(request, storage.path(path))
    except SuspiciousFileOperation:
        raise Http404("No such file") from None
    except OSError as exc:
        if exc.errno in MISSING_FILE_ERRORS:
            raise Http404("No such file") from None
        raise
    if signed_until is None:
        # Whoever caches a public file must ask again: its video may be unpublished since.
        response["Cache-Control"] = "no-cache"
    else:
        response["Cache-Control"] = f"private, max-age={max(signed_until - int(time.time()), 0)}"
    return response


@csrf_exempt  # read-only; a CSRF refusal would tell a stranger the address exists
@never_cache
def metrics(request):
    """Prometheus metrics (``videos.metrics``) for a staff session, the bearer of
    ``METRICS_TOKEN``, or, with no token set, a connection from this machine that no
    proxy forwarded. Anyone else gets the site's plain 404, as for an unknown address."""
    if not may_scrape_metrics(request):
        raise Http404()
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    return HttpResponse(video_metrics.exposition(), content_type=CONTENT_TYPE_PLAIN_0_0_4)


def may_scrape_metrics(request):
    if request.user.is_staff:
        return True
    if settings.METRICS_TOKEN:
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        if secrets.compare_digest(presented.strip().encode(), settings.METRICS_TOKEN.encode()):
            return True
        logger.warning("Refused a /metrics scrape from %s: wrong bearer token", request.META.get("REMOTE_ADDR"))
        return False
    return _from_this_machine(request)


def _from_this_machine(request):
    if any(header in request.META for header in FORWARDING_HEADERS):
        return False
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False
