from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from videos import services
from videos.models import Video
from videos.validators import clean_thumbnail, clean_video_file


class VideoSerializer(serializers.ModelSerializer):
    file = serializers.FileField(write_only=True, allow_empty_file=False)
    # A file, not an ImageField: clean_thumbnail judges the picture (a Pillow check first
    # would refuse a decompression bomb without saying why).
    thumbnail = serializers.FileField(write_only=True, required=False, allow_empty_file=False)
    video_url = serializers.SerializerMethodField()
    thumbnail_url = serializers.SerializerMethodField()
    owner = serializers.PrimaryKeyRelatedField(read_only=True)

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


class ProviderHealthSerializer(serializers.Serializer):
    name = serializers.CharField()
    configured = serializers.BooleanField()
    available = serializers.BooleanField()


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok", "degraded", "down"])
    providers = ProviderHealthSerializer(many=True, required=False, help_text="Staff only.")
