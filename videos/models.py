import logging
import uuid
from datetime import timedelta

from django.conf import settings
from django.core.files.storage import storages
from django.db import models
from django.utils import timezone

from storage_backends.names import provider_of

logger = logging.getLogger(__name__)


class StorageProvider(models.TextChoices):
    """Where a video's files are stored. The order of the fallback chain is a setting."""

    CLOUDINARY = "cloudinary", "Cloudinary"
    S3 = "s3", "Amazon S3"
    LOCAL = "local", "Local disk"


class Processing(models.TextChoices):
    """Where a video's duration and poster stand after an upload (``jobs.process_upload``)."""

    PENDING = "pending", "Pending"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class MoveStatus(models.TextChoices):
    """Where the last move asked for a video stands (``jobs.move_video``)."""

    QUEUED = "queued", "Queued"
    MOVING = "moving", "Moving"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class VideoQuerySet(models.QuerySet):
    def visible_to(self, user):
        """Published videos for everyone, one's own too when signed in, all for staff."""
        if user.is_staff:
            return self
        if user.is_authenticated:
            return self.filter(models.Q(is_published=True) | models.Q(owner=user))
        return self.filter(is_published=True)


def thumbnail_storage():
    """The chain, reading a thumbnail's django-cloudinary-storage name as an image resource."""
    return storages["thumbnails"]


class Video(models.Model):
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,  # a user's videos hold files: remove them through the app first
        related_name="videos",
    )
    file = models.FileField(upload_to="videos/%Y/%m/", max_length=500)
    thumbnail = models.ImageField(upload_to="thumbnails/%Y/%m/", max_length=500, blank=True, storage=thumbnail_storage)
    # True when the thumbnail is a frame cut from the file (it is cut again when the
    # file is replaced); False when an uploader chose it (it then stays).
    thumbnail_generated = models.BooleanField(default=False, db_default=False, editable=False)
    # Which provider holds ``file``: set from the stored name on every save. The Python
    # default serves new objects, db_default rows written by anything else; rows from
    # before the field existed are Cloudinary's.
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
    # Duration and poster of the current file: cut in the upload's request without a
    # job queue, by a worker with one; "failed" says why in processing_error.
    processing = models.CharField(
        max_length=10, choices=Processing.choices, default=Processing.DONE, db_default=Processing.DONE, editable=False
    )
    processing_error = models.TextField(blank=True, default="", db_default="", editable=False)
    # The last move asked for (the admin's "Move to …", migrate_storage --queue): to
    # which provider, how it stands, why it failed (or is being retried), and when.
    move_status = models.CharField(
        max_length=10, choices=MoveStatus.choices, blank=True, default="", db_default="", editable=False
    )
    move_target = models.CharField(
        max_length=20, choices=StorageProvider.choices, blank=True, default="", db_default="", editable=False
    )
    move_detail = models.TextField(blank=True, default="", db_default="", editable=False)
    move_updated_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = VideoQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["is_published", "-created_at"], name="video_published_recent"),
            # /media/ looks a file up by its stored name to decide who may have it.
            models.Index(fields=["file"], name="video_file"),
            models.Index(fields=["thumbnail"], name="video_thumbnail"),
        ]

    def __str__(self):
        return self.title

    def save(self, *args, **kwargs):
        """Store new files through the fallback chain first, then write the row.

        The row records the provider that took the file in the same write. When the
        files cannot be stored, or the row cannot be written, the files stored by
        this save are removed again.
        """
        stored = self.store_new_files()
        try:
            if self.file:
                self.storage_provider = provider_of(self.file.name)
                update_fields = kwargs.get("update_fields")
                if update_fields is not None and "file" in update_fields:
                    kwargs["update_fields"] = {*update_fields, "storage_provider"}
            super().save(*args, **kwargs)
        except BaseException:
            remove_stored_files(stored)
            raise

    def store_new_files(self):
        """Store the files assigned since the last save; returns ``[(storage, name)]``.

        Files already stored are left alone, so calling this before ``save()`` (to keep
        a long upload out of a database transaction) makes ``save()`` store nothing.
        """
        stored = []
        try:
            for field_file in (self.file, self.thumbnail):
                if field_file and not field_file._committed:
                    field_file.save(field_file.name, field_file.file, save=False)
                    stored.append((field_file.storage, field_file.name))
        except BaseException:
            remove_stored_files(stored)
            raise
        return stored


def remove_stored_files(stored):
    for storage, name in stored:
        try:
            storage.delete(name)
        except Exception as exc:
            logger.error("Could not remove %s after a failed save (%s); cleanup_orphans will find it", name, exc)


class PendingDeletion(models.Model):
    """A stored file whose removal failed; ``retry_deletions`` tries it again, with backoff."""

    name = models.CharField(max_length=520, unique=True, help_text="The stored name, provider prefix included.")
    provider = models.CharField(max_length=20, choices=StorageProvider.choices)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["next_attempt_at", "id"]

    def __str__(self):
        return self.name


class UploadSessionQuerySet(models.QuerySet):
    def still_open(self):
        """Uploads no one has finished with: still taking bytes, or being completed."""
        return self.filter(status__in=(UploadSession.Status.UPLOADING, UploadSession.Status.COMPLETING))


class UploadSession(models.Model):
    """A direct upload: the client sends the bytes to ``provider`` under ``key``, then
    completes it, and the server checks what arrived before it writes the video's row
    (``videos.upload_sessions``)."""

    class Status(models.TextChoices):
        UPLOADING = "uploading", "Uploading"
        COMPLETING = "completing", "Being checked"
        COMPLETED = "completed", "Completed"
        ABANDONED = "abandoned", "Abandoned"
        EXPIRED = "expired", "Expired"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="upload_sessions")
    filename = models.CharField(max_length=255)
    size = models.PositiveBigIntegerField()
    content_type = models.CharField(max_length=100)
    provider = models.CharField(max_length=20, choices=StorageProvider.choices)
    # The provider's name for the file, without the provider prefix; the video's stored
    # name becomes "provider:key", as a file stored through the chain is named.
    key = models.CharField(max_length=500)
    # "crc32" when the client sends each part's CRC32 and the provider checks it
    # (S3 multipart targets; storage_backends.direct); "" when it does not.
    part_checksum = models.CharField(max_length=10, blank=True, default="")
    # What the provider's direct upload needs to carry on (storage_backends.direct).
    state = models.JSONField(default=dict)
    # Providers this upload left after its client could not reach them, in order.
    tried = models.JSONField(default=list)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.UPLOADING)
    video = models.ForeignKey(Video, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # A completion handed to the background (``complete_later``): what was asked, when
    # it was claimed, and why it failed if it did ({"status", "detail"}).
    completion = models.JSONField(default=dict, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()

    objects = UploadSessionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "expires_at"], name="upload_session_open")]

    def __str__(self):
        return f"{self.filename} ({self.get_status_display()})"


class OrphanSweep(models.Model):
    """What one run of ``cleanup_orphans`` found on one provider (``videos.housekeeping``
    keeps the last few per provider)."""

    provider = models.CharField(max_length=20, choices=StorageProvider.choices)
    found = models.PositiveIntegerField()
    deleted = models.PositiveIntegerField()
    finished_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-finished_at", "-id"]
        indexes = [models.Index(fields=["provider", "-finished_at"])]

    def __str__(self):
        return f"{self.provider}: {self.found} orphans, {self.deleted} deleted"


class StorageEventQuerySet(models.QuerySet):
    def prune(self):
        """Remove events older than ``StorageEvent.KEPT_FOR``; returns how many went."""
        deleted, _ = self.filter(created_at__lt=timezone.now() - StorageEvent.KEPT_FOR).delete()
        return deleted


class StorageEvent(models.Model):
    """One outcome of the storage chain: a file stored (on which provider, after which
    provider failed it, and why in a word) or a file no provider took. The admin's
    storage dashboard counts uploads and fallbacks from these
    (``videos.storage_events`` records them; kept ``KEPT_FOR``)."""

    KEPT_FOR = timedelta(days=90)

    class Outcome(models.TextChoices):
        STORED = "stored", "Stored"
        FAILED = "failed", "No provider took it"

    class Via(models.TextChoices):
        UPLOAD = "upload", "Upload through the server"
        DIRECT = "direct", "Direct upload"
        MOVE = "move", "Move to another provider"

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    via = models.CharField(max_length=10, choices=Via.choices)
    # The provider that took the file; blank when none did.
    provider = models.CharField(max_length=20, choices=StorageProvider.choices, blank=True)
    # The first configured provider that did not take it, and why (a FailureKind);
    # blank when the first one in line took it.
    fallen_from = models.CharField(max_length=20, choices=StorageProvider.choices, blank=True)
    reason_kind = models.CharField(max_length=20, blank=True)
    name = models.CharField(max_length=520, help_text="The stored name, or the name asked for when none took it.")
    size_bytes = models.PositiveBigIntegerField(null=True, blank=True)

    objects = StorageEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.name} {self.get_outcome_display().lower()}"

    @property
    def fell_back(self):
        return bool(self.fallen_from)
