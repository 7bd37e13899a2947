from django.contrib import admin
from django.urls import include, path

from videos import views as video_views

admin.site.site_header = "Stremora administration"
admin.site.site_title = "Stremora"
admin.site.index_title = "Videos and storage"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("videos.api.urls")),
    path("", video_views.VideoListView.as_view(), name="video-list"),
    path("videos/<int:pk>/", video_views.VideoWatchView.as_view(), name="video-watch"),
    # Files of the local provider (MEDIA_URL), with byte ranges so players can seek.
    path("media/<path:path>", video_views.local_media, name="local-media"),
]
