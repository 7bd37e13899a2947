"""The public pages: published videos, a watch page, and local-disk files with byte ranges."""

from django.core.exceptions import SuspiciousFileOperation
from django.http import Http404
from django.views.generic import DetailView, ListView

from storage_backends import providers
from videos import services
from videos.models import Video
from videos.ranges import ranged_file_response


class VideoListView(ListView):
    template_name = "videos/video_list.html"
    context_object_name = "videos"
    paginate_by = 24

    def get_queryset(self):
        return Video.objects.filter(is_published=True).select_related("owner")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
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
    """A file of the local provider, with Range support so that players can seek."""
    try:
        full_path = providers.get_storage("local").path(path)
    except SuspiciousFileOperation:
        raise Http404("No such file") from None
    try:
        return ranged_file_response(request, full_path)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise Http404("No such file") from None
