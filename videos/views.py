"""The public pages: published videos, a watch page, and local-disk files with byte ranges."""

import errno
import time

from django.core import signing
from django.core.exceptions import SuspiciousFileOperation
from django.http import Http404, HttpResponseBadRequest, HttpResponseForbidden
from django.views.generic import DetailView, ListView
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

from storage_backends import providers
from storage_backends.names import qualify
from videos import services
from videos.api.filters import SEARCH_FIELDS, BoundedSearchFilter
from videos.models import StorageProvider, Video
from videos.ranges import ranged_file_response

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
