from datetime import datetime
from datetime import timezone as dt_timezone

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from rest_framework import serializers

from storage_backends import health

from videos import services
from videos.api.fields import StrictBooleanField, StrictCharField
from videos.models import Video
from videos.validators import clean_thumbnail, clean_video_file


class VideoSerializer(serializers.ModelSerializer):
    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.CharField: StrictCharField,
        models.TextField: StrictCharField,
    }
    file = serializers.FileField(write_only=True, allow_empty_file=False)
    # A file, not an ImageField: clean_thumbnail judges the picture (a Pillow check first
    # would refuse a decompression bomb without saying why).
    thumbnail = serializers.FileField(write_only=True, required=False, allow_empty_file=False)
    video_url = serializers.SerializerMethodField()
    thumbnail_url = serializers.SerializerMethodField()
    owner = serializers.PrimaryKeyRelatedField(read_only=True)
    is_published = StrictBooleanField(required=False)

    class Meta:
        model = Video
        fields = [
            "id",
            "title",
            "description",
            "file",
            "thumbnail",
            "video_url",
            "thumbnail_url",
            "storage_provider",
            "size_bytes",
            "content_type",
            "duration_seconds",
            "processing",
            "is_published",
            "owner",
            "created_at",
            "updated_at",
        ]
        # processing: "pending" while a worker cuts the duration and poster of a new file
        # (duration_seconds and a thumbnail come with "done"), "failed" if it could not.
        read_only_fields = ["storage_provider", "size_bytes", "content_type", "duration_seconds", "processing"]

    def validate_file(self, uploaded_file):
        try:
            self._sniffed_type = clean_video_file(uploaded_file)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None
        return uploaded_file

    def validate_thumbnail(self, image):
        try:
            return clean_thumbnail(image)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None

    def _absolute(self, url):
        request = self.context.get("request")
        return request.build_absolute_uri(url) if url and request and url.startswith("/") else url

    def get_video_url(self, video) -> str | None:
        return self._absolute(services.file_url(video.file))

    def get_thumbnail_url(self, video) -> str | None:
        return self._absolute(services.poster_url(video))

    def create(self, validated_data):
        return services.create_video(content_type=getattr(self, "_sniffed_type", None), **validated_data)

    def update(self, video, validated_data):
        return services.update_video(video, content_type=getattr(self, "_sniffed_type", None), **validated_data)


class VideoUpdateSerializer(VideoSerializer):
    """For PATCH and PUT: a new file is optional, metadata alone may change."""

    file = serializers.FileField(write_only=True, required=False, allow_empty_file=False)


class ProviderFailureSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    reason = serializers.CharField(help_text="Why it failed, with every credential blanked out.")


class ProviderCheckSerializer(serializers.Serializer):
    ok = serializers.BooleanField(allow_null=True, help_text="null: another check was under way; ask again.")
    detail = serializers.CharField()
    at = serializers.DateTimeField()


class VideoMetadataSerializer(VideoUpdateSerializer):
    """A change of metadata alone, as JSON (for the schema: a file needs a multipart body)."""

    class Meta(VideoUpdateSerializer.Meta):
        fields = [name for name in VideoUpdateSerializer.Meta.fields if name not in ("file", "thumbnail")]


class ProviderHealthSerializer(serializers.Serializer):
    name = serializers.CharField()
    configured = serializers.BooleanField()
    available = serializers.BooleanField(help_text="Configured, its breaker not open, and its check (if run) passed.")
    breaker = serializers.ChoiceField(
        choices=["closed", "open", "trying"], help_text="trying: the cool-down is over and the next upload is a trial."
    )
    open_until = serializers.DateTimeField(allow_null=True, help_text="While the breaker is open.")
    last_success = serializers.DateTimeField(
        allow_null=True, help_text="The last upload it took (written at most every 10 s per worker)."
    )
    last_failure = ProviderFailureSerializer(allow_null=True, help_text="The last failure counted against it.")
    check = ProviderCheckSerializer(required=False, help_text="With ?check=1 only.")

    def to_representation(self, report):
        """A ``storage_backends.health.ProviderReport`` as the API shows it (the fields
        above describe it for the schema)."""
        record = report.record
        body = {
            "name": report.name,
            "configured": report.configured,
            "available": report.available,
            "breaker": record.state.value,
            "open_until": _timestamp(record.open_until),
            "last_success": _timestamp(record.last_success),
            "last_failure": None,
        }
        if record.last_failure is not None:
            body["last_failure"] = {"at": _timestamp(record.last_failure), "reason": record.last_failure_reason}
        if report.check is not None:
            check = report.check
            body["check"] = {"ok": check.ok, "detail": check.detail, "at": _timestamp(check.checked_at)}
        return body


def _timestamp(seconds):
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=dt_timezone.utc).isoformat()


class HealthQuerySerializer(serializers.Serializer):
    check = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Staff only (ignored for anyone else): also run each configured provider's cheap check, within "
        f"{health.CHECK_TIMEOUT:g} s; the answers are reused for {health.CHECK_CACHE_SECONDS} s.",
    )


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=["ok", "degraded", "down"],
        help_text="down (HTTP 503): no configured provider is available. degraded: one is not, or the last "
        "outcome seen of one was a failure. ok: every configured provider is available and last succeeded.",
    )
    providers = ProviderHealthSerializer(many=True, required=False, help_text="Staff only.")
