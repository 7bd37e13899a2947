from django.contrib import admin
from django.urls import include, path

from videos import views as video_views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("videos.api.urls")),
    path("", video_views.VideoListView.as_view(), name="video-list"),
    path("videos/<int:pk>/", video_views.VideoWatchView.as_view(), name="video-watch"),
    # Files of the local provider (MEDIA_URL), with byte ranges so players can seek.
    path("media/<path:path>", video_views.local_media, name="local-media"),
    # Prometheus metrics, for staff, the METRICS_TOKEN bearer or loopback (docs/production.md).
    path("metrics", video_views.metrics, name="metrics"),
]
