from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from videos.api.uploads import UploadViewSet
from videos.api.views import HealthView, TokenView, VideoViewSet

router = DefaultRouter()
router.register("videos", VideoViewSet, basename="video")
router.register("uploads", UploadViewSet, basename="upload")

# Names are reversed as "api:<name>"; the public pages have their own namespace.
app_name = "api"

urlpatterns = [
    path("auth/token/", TokenView.as_view(), name="token"),
    path("health/", HealthView.as_view(), name="health"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api:schema"), name="docs"),
    # A chunk of a local-chunked direct upload (the CONTRACT spells it without a slash).
    path("uploads/<uuid:pk>/content", UploadViewSet.as_view({"put": "content"}), name="upload-content"),
    path("", include(router.urls)),
]
