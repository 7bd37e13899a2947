from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("videos.api.urls")),
    path("", include("videos.urls")),
]

handler404 = "videos.api.errors.page_not_found"
