from django.conf import settings
from django.db import models


class StorageProvider(models.TextChoices):
    """Where a video's files are stored. The order of the fallback chain is a setting."""

    CLOUDINARY = "cloudinary", "Cloudinary"
    S3 = "s3", "Amazon S3"
    LOCAL = "local", "Local disk"


class Video(models.Model):
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,  # a user's videos hold files: remove them through the app first
        related_name="videos",
    )
    file = models.FileField(upload_to="videos/%Y/%m/", max_length=500)
    thumbnail = models.ImageField(upload_to="thumbnails/%Y/%m/", max_length=500, blank=True)
    # The Python default serves new objects, db_default rows written by anything
    # else; rows from before the field existed are Cloudinary's.
    storage_provider = models.CharField(
        max_length=20,
        choices=StorageProvider.choices,
        default=StorageProvider.CLOUDINARY,
        db_default=StorageProvider.CLOUDINARY,
        db_index=True,
    )
    size_bytes = models.PositiveBigIntegerField(default=0)
    content_type = models.CharField(max_length=100, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)
    is_published = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["is_published", "-created_at"], name="video_published_recent"),
        ]

    def __str__(self):
        return self.title
