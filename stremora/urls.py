from django.contrib import admin
from django.urls import include, path

from videos import views as video_views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("videos.api.urls")),
    path("", include("videos.urls")),
    # Prometheus metrics, for staff, the METRICS_TOKEN bearer or loopback (docs/production.md).
    path("metrics", video_views.metrics, name="metrics"),
]

handler404 = "videos.api.errors.page_not_found"
