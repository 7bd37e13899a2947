from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from videos.api.views import HealthView, TokenView, VideoViewSet

router = DefaultRouter()
router.register("videos", VideoViewSet, basename="video")

urlpatterns = [
    path("auth/token/", TokenView.as_view(), name="api-token"),
    path("health/", HealthView.as_view(), name="api-health"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include(router.urls)),
]
