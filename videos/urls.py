"""The public pages, under the ``pages`` namespace (the API's are under ``api``)."""

from django.templatetags.static import static
from django.urls import path
from django.views.generic import RedirectView

from videos import views

app_name = "pages"

urlpatterns = [
    path("", views.VideoListView.as_view(), name="video-list"),
    path("videos/<int:pk>/", views.VideoWatchView.as_view(), name="video-watch"),
    # Files of the local provider (MEDIA_URL), with byte ranges so players can seek.
    path("media/<path:path>", views.local_media, name="local-media"),
    # Pages without a <link rel="icon"> (the admin's, the API's) make browsers ask here.
    path("favicon.ico", RedirectView.as_view(url=static("videos/favicon.svg"), permanent=True), name="favicon"),
]
