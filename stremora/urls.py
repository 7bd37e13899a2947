from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path

admin.site.site_header = "Stremora administration"
admin.site.site_title = "Stremora"
admin.site.index_title = "Videos and storage"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("videos.api.urls")),
]

# Local-disk files in development; production serves them from the web server.
urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
