from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import permissions, viewsets
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from storage_backends import health
from videos import services
from videos.api import errors
from videos.api.filters import SEARCH_FIELDS, VideoFilter
from videos.api.permissions import IsOwnerOrStaffOrReadOnly
from videos.api.serializers import (
    HealthQuerySerializer,
    HealthSerializer,
    VideoMetadataSerializer,
    VideoSerializer,
    VideoUpdateSerializer,
)
from videos.api.throttling import LOGIN_THROTTLES, first_refusal, retry_after
from videos.models import Video


# A file travels only in a multipart body; JSON can carry the metadata of a change.
@extend_schema_view(
    create=extend_schema(
        request={"multipart/form-data": VideoSerializer},
        responses={201: VideoSerializer, **errors.answers(503)},
    ),
    update=extend_schema(
        request={"multipart/form-data": VideoUpdateSerializer, "application/json": VideoMetadataSerializer},
        responses={200: VideoSerializer, **errors.answers(503)},
    ),
    partial_update=extend_schema(
        request={"multipart/form-data": VideoUpdateSerializer, "application/json": VideoMetadataSerializer},
        responses={200: VideoSerializer, **errors.answers(503)},
    ),
)
class VideoViewSet(viewsets.ModelViewSet):
    """Videos: published ones for everyone, one's own too when signed in, all for staff."""

    permission_classes = [permissions.IsAuthenticatedOrReadOnly, IsOwnerOrStaffOrReadOnly]
    parser_classes = [MultiPartParser, FormParser, JSONParser]
    filterset_class = VideoFilter
    search_fields = SEARCH_FIELDS
    ordering_fields = ["created_at", "title", "size_bytes", "duration_seconds"]
    ordering = ["-created_at", "-id"]
    # Requests that may carry a body past DATA_UPLOAD_MAX_MEMORY_SIZE (videos.upload_limits).
    large_body_actions = {"create", "update", "partial_update"}

    def get_queryset(self):
        return Video.objects.visible_to(self.request.user).select_related("owner")

    def get_serializer_class(self):
        if self.action in ("update", "partial_update"):
            return VideoUpdateSerializer
        return VideoSerializer

    def perform_create(self, serializer):
        serializer.save(owner=self.request.user)

    def perform_destroy(self, video):
        services.delete_video(video)


class TokenView(ObtainAuthToken):
    """A token for a username and password, throttled per client address and per username."""

    # The same counters as the admin's login (stremora/admin_site.py).
    throttle_classes = LOGIN_THROTTLES

    def check_throttles(self, request):
        # A request refused for its address does not even parse its body.
        refusal = first_refusal(self.get_throttles(), request, self)
        if refusal is not None:
            self.throttled(request, retry_after(refusal))


class HealthView(APIView):
    """Whether uploads can be stored: ``status`` for anyone; for staff also each provider
    of the chain with what the server last saw of it (which providers a deployment uses
    is not for anonymous eyes). Only staff's ``?check=1`` calls the providers, and at
    most once every few seconds (``storage_backends.health``); anyone else's is ignored."""

    permission_classes = [permissions.AllowAny]
    throttle_classes = []

    @extend_schema(
        parameters=[HealthQuerySerializer],
        responses={
            200: HealthSerializer,
            503: OpenApiResponse(HealthSerializer, "No configured provider is available (`status` is down)."),
            **errors.answers(400),
        },
    )
    def get(self, request):
        query = HealthQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        staff = request.user.is_staff
        if staff and query.validated_data["check"]:
            reports = health.checked_reports()
        else:
            reports = health.provider_reports()
        status = health.overall_status(reports)
        body = HealthSerializer({"status": status, "providers": reports}).data if staff else {"status": status}
        return Response(body, status=503 if status == "down" else 200)
