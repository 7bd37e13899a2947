"""``/api/uploads/``: direct uploads, where the client sends the bytes to the provider.

Thin views over ``videos.upload_sessions``; the shapes are in the serializers below.
An upload is its creator's alone: anyone else gets 404.
"""

import math
import re

from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import JSONParser
from rest_framework.response import Response

from videos import upload_sessions
from videos.provider_slots import provider_slot
from videos.api import errors
from videos.api.permissions import may_change
from videos.api.fields import StrictBooleanField, StrictCharField, StrictIntegerField
from videos.api.serializers import VideoSerializer
from videos.models import UploadSession, Video
from videos.validators import VIDEO_EXTENSIONS

MAX_PARTS_PER_REQUEST = 100
CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")


class UploadSerializer(serializers.ModelSerializer):
    target = serializers.SerializerMethodField()
    retry_after = serializers.SerializerMethodField(
        help_text="While the upload is completing: seconds after which to ask how it went, when the server "
        "can tell. Otherwise null."
    )

    class Meta:
        model = UploadSession
        fields = [
            "id", "provider", "status", "expires_at", "filename", "size", "content_type", "video", "error", "target",
            "retry_after",
        ]
        read_only_fields = fields

    def get_retry_after(self, session) -> float | None:
        return upload_sessions.completion_retry_after(session)

    def get_target(self, session) -> dict | None:
        if session.status != UploadSession.Status.UPLOADING:
            return None
        target = upload_sessions.target(session)
        if target["method"] == "local-chunked":
            # The server receives these chunks itself, at this address.
            request = self.context["request"]
            target["url"] = request.build_absolute_uri(reverse("api:upload-content", args=[session.pk]))
        return target


class UploadProgressSerializer(UploadSerializer):
    """The upload with what its provider holds already, for a client that resumes."""

    received_bytes = serializers.SerializerMethodField()
    parts = serializers.SerializerMethodField()
    completed_video = serializers.SerializerMethodField()

    class Meta(UploadSerializer.Meta):
        fields = [*UploadSerializer.Meta.fields, "received_bytes", "parts", "completed_video"]
        read_only_fields = fields

    def _received(self, session):
        if not hasattr(self, "_received_cache"):
            self._received_cache = (
                upload_sessions.received(session) if session.status == UploadSession.Status.UPLOADING else None
            )
        return self._received_cache

    def get_received_bytes(self, session) -> int | None:
        received = self._received(session)
        if received is None:
            return session.size if session.status == UploadSession.Status.COMPLETED else 0
        return received.received_bytes

    def get_parts(self, session) -> list[dict]:
        received = self._received(session)
        return received.parts if received else []

    @extend_schema_field(VideoSerializer(allow_null=True))
    def get_completed_video(self, session):
        """The video a completed upload became, as ``GET /api/videos/{id}/`` shows it, so
        that a client waiting on a completion in the background asks nothing more."""
        if session.status != UploadSession.Status.COMPLETED or session.video is None:
            return None
        return VideoSerializer(session.video, context=self.context).data


# What validators.validate_video_name takes: a name, then one of the video extensions.
VIDEO_FILENAME_PATTERN = rf"^.*[^/\\.]\.({'|'.join(VIDEO_EXTENSIONS)})$"


@extend_schema_field({"type": "string", "minLength": 1, "maxLength": 255, "pattern": VIDEO_FILENAME_PATTERN})
class VideoFilenameField(StrictCharField):
    pass


class UploadStartSerializer(serializers.Serializer):
    filename = VideoFilenameField(max_length=255)
    # Its maximum, MAX_UPLOAD_MB, is set in the schema by videos.api.schema.document_limits;
    # a larger size is a 413, as for every upload.
    size = StrictIntegerField(min_value=1, help_text="Bytes.")
    # Defaulted in validate(), not with ``default=``: schemathesis reads a property with a
    # default as a required one.
    content_type = StrictCharField(max_length=100, required=False, help_text="Defaults to application/octet-stream.")
    part_checksum = serializers.ChoiceField(
        choices=["crc32"], required=False,
        help_text="`crc32`: the client sends each part's CRC32 (`parts/` signs it into the part's URL) and S3 "
        "checks every part. Ignored by targets without parts.",
    )

    def validate(self, data):
        return {"content_type": "application/octet-stream", **data}


class PartNumbersSerializer(serializers.Serializer):
    numbers = serializers.ListField(
        child=StrictIntegerField(min_value=1), allow_empty=False, max_length=MAX_PARTS_PER_REQUEST
    )
    checksums = serializers.ListField(
        child=StrictCharField(min_length=8, max_length=8), required=False, max_length=MAX_PARTS_PER_REQUEST,
        help_text="With `part_checksum` crc32: each part's CRC32 in base64, in the order of `numbers`; the part "
        "is then sent with it as `x-amz-checksum-crc32`.",
    )


class ReceivedSerializer(serializers.Serializer):
    received_bytes = serializers.IntegerField(help_text="Bytes the server holds of the upload.")


class SignedPartSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    url = serializers.URLField()


class SignedPartsSerializer(serializers.Serializer):
    parts = SignedPartSerializer(many=True)


class FailSerializer(serializers.Serializer):
    reason = StrictCharField(max_length=500, required=False, allow_blank=True, default="")


class UploadedPartSerializer(serializers.Serializer):
    number = StrictIntegerField(min_value=1)
    etag = StrictCharField(max_length=200)


class CompleteSerializer(serializers.Serializer):
    title = StrictCharField(max_length=200, required=False)
    description = StrictCharField(required=False, allow_blank=True)
    is_published = StrictBooleanField(required=False)
    parts = UploadedPartSerializer(many=True, required=False, max_length=10_000)
    public_id = StrictCharField(max_length=500, required=False)
    video = StrictIntegerField(required=False, help_text="Replace the file of this video.")

    def validate_video(self, video_id):
        user = self.context["request"].user
        video = Video.objects.visible_to(user).filter(pk=video_id).first()
        if video is None:
            raise serializers.ValidationError("No such video.")
        if not may_change(user, video):
            raise serializers.ValidationError("Only the video's owner or staff may replace its file.")
        return video

    def validate(self, data):
        if "video" not in data and not data.get("title"):
            raise serializers.ValidationError({"title": "A new video needs a title."})
        return data


class UploadViewSet(mixins.CreateModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Direct uploads: the client sends the bytes to the provider the server picks."""

    permission_classes = [permissions.IsAuthenticated]
    # JSON bodies only: a form would read an empty field as a missing one, and cannot
    # carry the list of parts. A chunk's bytes (``content``) are read as they come.
    parser_classes = [JSONParser]
    serializer_class = UploadSerializer
    lookup_value_regex = "[0-9a-f-]{36}"
    # A chunk of a local-chunked upload is a large body (videos.upload_limits).
    large_body_actions = {"content"}

    def get_queryset(self):
        return UploadSession.objects.filter(owner=self.request.user)

    def _answer(self, session, status_code=status.HTTP_200_OK):
        return Response(UploadSerializer(session, context=self.get_serializer_context()).data, status=status_code)

    @extend_schema(request=UploadStartSerializer, responses={201: UploadSerializer, **errors.answers(429, 503)})
    def create(self, request):
        start = UploadStartSerializer(data=request.data, context=self.get_serializer_context())
        start.is_valid(raise_exception=True)
        with provider_slot():
            session = upload_sessions.start_upload(request.user, **start.validated_data)
        return self._answer(session, status.HTTP_201_CREATED)

    @extend_schema(responses={200: UploadProgressSerializer, **errors.answers(503)})
    def retrieve(self, request, pk=None):
        session = self.get_object()
        return Response(UploadProgressSerializer(session, context=self.get_serializer_context()).data)

    @extend_schema(
        description="Abandon the upload: the provider's partial data is removed. The upload stays readable, "
        "with `status` abandoned.",
        responses={204: None, **errors.answers(409)},
    )
    def destroy(self, request, pk=None):
        upload_sessions.abandon(self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=PartNumbersSerializer, responses={200: SignedPartsSerializer, **errors.answers(409, 410)})
    @action(detail=True, methods=["post"])
    def parts(self, request, pk=None):
        session = self.get_object()
        numbers = PartNumbersSerializer(data=request.data, context=self.get_serializer_context())
        numbers.is_valid(raise_exception=True)
        return Response(
            {
                "parts": upload_sessions.sign_parts(
                    session, numbers.validated_data["numbers"], numbers.validated_data.get("checksums")
                )
            }
        )

    @extend_schema(request=FailSerializer, responses={200: UploadSerializer, **errors.answers(409, 410, 503)})
    @action(detail=True, methods=["post"])
    def fail(self, request, pk=None):
        session = self.get_object()
        report = FailSerializer(data=request.data, context=self.get_serializer_context())
        report.is_valid(raise_exception=True)
        return self._answer(upload_sessions.fail_over(session, report.validated_data["reason"]))

    @extend_schema(
        request=CompleteSerializer,
        responses={
            201: VideoSerializer,
            200: OpenApiResponse(VideoSerializer, description="The file was replaced."),
            202: OpenApiResponse(
                UploadSerializer,
                description="With `Prefer: respond-async`: the server checks and completes the upload in the "
                "background; `GET /api/uploads/{id}/` tells the outcome (`status` completed, with `video` and "
                "`completed_video`, or `error`). While it is completing, `retry_after` says after how many "
                "seconds to ask (null: the server cannot tell).",
            ),
            **errors.answers(409, 410, 503),
        },
        parameters=[
            OpenApiParameter(
                "Retry-After", int, OpenApiParameter.HEADER, response=[202],
                description="`retry_after` of the answer, rounded up to whole seconds.",
            )
        ],
    )
    @action(detail=True, methods=["post"])
    def complete(self, request, pk=None):
        session = self.get_object()
        upload_sessions.check_open(session)
        completion = CompleteSerializer(data=request.data, context=self.get_serializer_context())
        completion.is_valid(raise_exception=True)
        fields = dict(completion.validated_data)
        if "parts" in fields:
            fields["parts"] = [dict(part) for part in fields["parts"]]
        if "respond-async" in request.headers.get("Prefer", ""):  # RFC 7240
            response = self._answer(upload_sessions.complete_later(session, **fields), status.HTTP_202_ACCEPTED)
            response["Preference-Applied"] = "respond-async"
            if response.data["retry_after"] is not None:  # in whole seconds for any HTTP client
                response["Retry-After"] = str(math.ceil(response.data["retry_after"]))
            return response
        with provider_slot():
            video, created = upload_sessions.complete(session, **fields)
        body = VideoSerializer(video, context=self.get_serializer_context()).data
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(
        request={"application/octet-stream": bytes},
        parameters=[
            OpenApiParameter(
                "Content-Range", str, OpenApiParameter.HEADER, required=True,
                description="The chunk's place in the file: `bytes FIRST-LAST/TOTAL`.",
            )
        ],
        responses={200: ReceivedSerializer, **errors.answers(409, 410)},
    )
    def content(self, request, pk=None):
        """One chunk of a ``local-chunked`` upload, ``Content-Range: bytes A-B/TOTAL``."""
        session = self.get_object()
        match = CONTENT_RANGE.match(request.headers.get("Content-Range", ""))
        if not match:
            raise upload_sessions.UploadRefused("A chunk needs a Content-Range header: bytes FIRST-LAST/TOTAL.")
        start, end, total = (int(number) for number in match.groups())
        if end < start or end - start + 1 != _content_length(request):
            raise upload_sessions.UploadRefused("The Content-Range does not match the chunk's Content-Length.")
        received_bytes = upload_sessions.receive_chunk(
            session, start=start, end=end, total=total, stream=request.stream
        )
        return Response({"received_bytes": received_bytes})


def _content_length(request):
    try:
        return int(request.headers.get("Content-Length") or 0)
    except ValueError:
        return -1
