"""The public pages, under the ``pages`` namespace (the API's are under ``api``)."""

from django.urls import path

from videos import views

app_name = "pages"

urlpatterns = [
    path("", views.VideoListView.as_view(), name="video-list"),
    path("videos/<int:pk>/", views.VideoWatchView.as_view(), name="video-watch"),
    # Files of the local provider (MEDIA_URL), with byte ranges so players can seek.
    path("media/<path:path>", views.local_media, name="local-media"),
]
