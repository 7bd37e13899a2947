import logging

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.widgets import AdminFileWidget
from django.db import models
from django.http import HttpResponseRedirect, JsonResponse
from django.template.defaultfilters import filesizeformat
from django.utils.html import format_html
from django.utils.timesince import timesince

from storage_backends import providers
from storage_backends.chain import describe_failure
from storage_backends.errors import ProviderNotConfigured, StorageUnavailable, TooLargeForProviders
from storage_backends.names import PROVIDER_NAMES
from videos import services, upload_sessions
from videos.dashboard import PROVIDER_COLOURS
from videos.housekeeping import missing_files
from videos.models import PendingDeletion, StorageProvider, UploadSession, Video
from videos.upload_limits import too_large_for_providers
from videos.validators import THUMBNAIL_FORMATS, clean_thumbnail, clean_video_file

logger = logging.getLogger(__name__)

BADGE_COLOURS = {"cloudinary": "#3448c5", "s3": "#c7511f", "local": "#5a6268"}
MOVE_COLOURS = {"queued": "#5a6268", "moving": "#3448c5", "done": "#2e7d32", "failed": "#c62828"}


class StoredFileWidget(AdminFileWidget):
    """The admin's file widget, for a file whose provider may have lost its settings.

    The current file links to the URL the rest of the site shows for it
    (``services.stored_file_url``: signed while the video is unpublished).
    """

    def is_initial(self, value):
        try:
            return super().is_initial(value)
        except ProviderNotConfigured:
            return bool(value)  # shown by name, without a link

    def format_value(self, value):
        value = super().format_value(value)
        return LinkedStoredFile(value) if value else value


class LinkedStoredFile:
    """A stored file as the file widget's template reads it: its name and its ``url``."""

    def __init__(self, field_file):
        self.field_file = field_file

    def __str__(self):
        return str(self.field_file)

    @property
    def url(self):
        return services.stored_file_url(self.field_file)


class VideoAdminForm(forms.ModelForm):
    """The video form; its file comes either posted with it or, sent by the page's
    script straight to a provider, as a direct upload (``upload_session``), with what
    its client reported of it (``upload_report``: S3's parts, Cloudinary's public_id)."""

    # A file, not an ImageField: clean_thumbnail judges the picture, as the API's does.
    thumbnail = forms.FileField(
        required=False, widget=StoredFileWidget(attrs={"accept": ",".join(THUMBNAIL_FORMATS)})
    )
    upload_session = forms.UUIDField(widget=forms.HiddenInput, required=False)
    upload_report = forms.JSONField(widget=forms.HiddenInput, required=False)

    # Set by VideoAdmin.get_form: who is saving, and why completing their upload failed
    # the last time this form was posted (``RefusedUpload``), if it did.
    editor = None
    refused_upload = None

    class Meta:
        model = Video
        fields = "__all__"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.refused_upload and not self.refused_upload.can_retry:
            self.data = self.data.copy()
            self.data.pop(self.add_prefix("upload_session"), None)  # that upload is over
        if (self.refused_upload or self.data.get(self.add_prefix("upload_session"))) and "file" in self.fields:
            self.fields["file"].required = False  # on its provider already, or refused for a reason shown

    def clean_upload_session(self):
        upload_id = self.cleaned_data.get("upload_session")
        if upload_id is None:
            return None
        session = UploadSession.objects.filter(pk=upload_id, owner=self.editor).first()
        if session is None:
            raise forms.ValidationError("No such upload of yours: choose the file again.")
        try:
            upload_sessions.check_open(session)
        except upload_sessions.UploadRefused as exc:
            raise forms.ValidationError(f"{exc} Choose the file again.") from None
        return session

    def clean_upload_report(self):
        report = self.cleaned_data.get("upload_report") or {}
        parts = report.get("parts") if isinstance(report, dict) else None
        well_formed = isinstance(report, dict) and isinstance(report.get("public_id") or "", str) and (
            parts is None
            or isinstance(parts, list)
            and all(isinstance(part, dict) and {"number", "etag"} <= part.keys() for part in parts)
        )
        if not well_formed:
            raise forms.ValidationError("The upload's report is not readable: choose the file again.")
        return report

    def clean(self):
        cleaned_data = super().clean()
        for field in ("upload_session", "upload_report"):  # hidden: shown on the file, where the editor looks
            for message in self.errors.pop(field, []):
                self.add_error("file", message)
        if self.refused_upload:
            self.add_error("file", self.refused_upload.message)
        elif cleaned_data.get("upload_session") and cleaned_data.get("file") and "file" in self.changed_data:
            self.add_error("file", "Send the file either with the form or as an upload, not both.")
        return cleaned_data

    def clean_file(self):
        uploaded = self.cleaned_data.get("file")
        if uploaded and "file" in self.changed_data:
            self.sniffed_type = clean_video_file(uploaded)
        return uploaded

    def clean_thumbnail(self):
        image = self.cleaned_data.get("thumbnail")
        if image and "thumbnail" in self.changed_data:
            return clean_thumbnail(image)
        return image


def move_action(provider):
    provider_label = StorageProvider(provider).label

    def move_to(modeladmin, request, queryset):
        outcome = services.queue_moves(queryset, provider)
        waiting, moved, failed = outcome.by_status()
        if waiting:
            modeladmin.message_user(
                request, f"Queued {len(waiting)} video(s) for a move to {provider_label}.", messages.SUCCESS
            )
        if moved:
            modeladmin.message_user(request, f"Moved {len(moved)} video(s) to {provider_label}.", messages.SUCCESS)
        if outcome.already_there:
            modeladmin.message_user(
                request, f"{len(outcome.already_there)} video(s) already on {provider_label}: nothing to move.", messages.INFO
            )
        for video in failed + outcome.unsent:
            video.refresh_from_db(fields=["move_detail"])
            modeladmin.message_user(
                request, f"{video}: not moved to {provider_label}: {video.move_detail}", messages.ERROR
            )

    move_to.__name__ = f"move_to_{provider}"
    move_to.short_description = f"Move to {provider_label}"
    return move_to


@admin.action(description="Verify files exist")
def verify_files(modeladmin, request, queryset):
    missing = [f"{video} ({name})" for video in queryset for name in missing_files(video)]
    if missing:
        modeladmin.message_user(request, "Missing: " + "; ".join(missing), messages.ERROR)
    else:
        modeladmin.message_user(request, f"All files of {queryset.count()} video(s) are where they should be.")


@admin.register(Video)
class VideoAdmin(admin.ModelAdmin):
    form = VideoAdminForm
    formfield_overrides = {
        models.FileField: {"widget": StoredFileWidget},
        models.ImageField: {"widget": StoredFileWidget},  # the admin's own default would win otherwise
    }
    list_display = ("title", "owner", "provider_badge", "move", "size", "is_published", "created_at")
    list_filter = ("storage_provider", "is_published")
    search_fields = ("title", "description")
    list_select_related = ("owner",)
    date_hierarchy = "created_at"
    raw_id_fields = ("owner",)
    readonly_fields = (
        "player",
        "storage_provider",
        "size",
        "content_type",
        "duration",
        "processing_state",
        "move",
        "created_at",
        "updated_at",
    )
    fieldsets = (
        (None, {"fields": ("title", "description", "owner", "is_published")}),
        ("Files", {"fields": ("player", "file", "thumbnail", "upload_session", "upload_report")}),
        (
            "Storage",
            {"fields": ("storage_provider", "size", "content_type", "duration", "processing_state", "move")},
        ),
        ("History", {"fields": ("created_at", "updated_at")}),
    )

    # Where the file goes, its size and its history are known once it is stored.
    add_fieldsets = (
        (None, {"fields": ("title", "description", "owner", "is_published")}),
        ("Files", {"fields": ("file", "thumbnail", "upload_session", "upload_report")}),
    )

    def get_fieldsets(self, request, obj=None):
        return self.add_fieldsets if obj is None else super().get_fieldsets(request, obj)

    @admin.display(description="size", ordering="size_bytes")
    def size(self, video):
        return filesizeformat(video.size_bytes)

    @admin.display(description="duration", ordering="duration_seconds")
    def duration(self, video):
        if video.duration_seconds is None:
            return self.get_empty_value_display()
        minutes, seconds = divmod(round(video.duration_seconds), 60)
        hours, minutes = divmod(minutes, 60)
        return f"{hours}:{minutes:02}:{seconds:02}" if hours else f"{minutes}:{seconds:02}"

    @admin.display(description="storage provider", ordering="storage_provider")
    def provider_badge(self, video):
        return format_html(
            '<span class="provider-badge" style="background:{};color:#fff;padding:2px 8px;border-radius:8px">{}</span>',
            PROVIDER_COLOURS.get(video.storage_provider, "#333"),
            video.get_storage_provider_display(),
        )

    @admin.display(description="processing", ordering="processing")
    def processing_state(self, video):
        if video.processing_error:
            return f"{video.get_processing_display()}: {video.processing_error}"
        return video.get_processing_display()

    @admin.display(description="move", ordering="move_updated_at")
    def move(self, video):
        """The last move asked for: where to, how it stands, why it failed, when."""
        if not video.move_status:
            return self.get_empty_value_display()
        return format_html(
            '<span class="move-status" style="color:{}" title="{}">{} to {}</span>{}<br><small>{}</small>',
            MOVE_COLOURS.get(video.move_status, "#333"),
            video.move_updated_at.strftime("%Y-%m-%d %H:%M:%S UTC") if video.move_updated_at else "",
            video.get_move_status_display(),
            video.get_move_target_display(),
            f": {video.move_detail}" if video.move_detail else "",
            f"{timesince(video.move_updated_at)} ago" if video.move_updated_at else "",
        )

    @admin.display(description="playback")
    def player(self, video):
        if not video.pk or not video.file:
            return "-"
        try:
            url = services.stored_file_url(video.file)
        except ProviderNotConfigured as exc:
            return str(exc)
        return format_html('<video controls preload="metadata" width="480" src="{}"></video>', url)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions["verify_files"] = self.get_action(verify_files)
        for provider in PROVIDER_NAMES:
            if providers.is_configured(provider):
                action = move_action(provider)
                actions[action.__name__] = (action, action.__name__, action.short_description)
        return actions

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)  # a class made for this request
        form.editor = request.user
        form.refused_upload = getattr(request, "refused_upload", None)
        return form

    def get_changeform_initial_data(self, request):
        return {"owner": request.user.pk, **super().get_changeform_initial_data(request)}

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        extra_context = {"max_upload_mb": settings.MAX_UPLOAD_MB, **(extra_context or {})}
        try:
            response = super().changeform_view(request, object_id, form_url, extra_context)
        except TooLargeForProviders as exc:
            self.message_user(
                request, f"{too_large_for_providers(exc.size, exc.largest)} Nothing was saved.", messages.ERROR
            )
            response = HttpResponseRedirect(request.get_full_path())
        except StorageUnavailable as exc:
            self.message_user(
                request,
                "The file could not be stored: every storage provider failed. Nothing was saved; "
                f"please try again in a minute. ({exc})",
                messages.ERROR,
            )
            response = HttpResponseRedirect(request.get_full_path())
        except (upload_sessions.UploadRefused, upload_sessions.ProviderUnreachable) as exc:
            # Completing the direct upload failed, and the video was rolled back with
            # the form's transaction: the form is shown again, the reason on its file.
            request.refused_upload = RefusedUpload.of(exc, request.POST.get("upload_session"))
            response = super().changeform_view(request, object_id, form_url, extra_context)
        if request.headers.get("X-Requested-With") == "XMLHttpRequest" and response.status_code == 302:
            # The upload script's XMLHttpRequest would follow the redirect itself, and the
            # page it fetched would use up the messages meant for the page the editor sees.
            return JsonResponse({"location": response["Location"]})
        return response

    def save_model(self, request, obj, form, change):
        session = form.cleaned_data.get("upload_session")
        if session is not None:
            report = form.cleaned_data["upload_report"]
            upload_sessions.complete(session, video=obj, parts=report.get("parts"), public_id=report.get("public_id"))
            return
        services.save_video(
            obj, file_changed="file" in form.changed_data, content_type=getattr(form, "sniffed_type", None)
        )

    def delete_model(self, request, obj):
        services.delete_video(obj)

    def delete_queryset(self, request, queryset):
        for video in queryset:
            services.delete_video(video)


class RefusedUpload:
    """Why completing an editor's direct upload failed, for the form shown again."""

    def __init__(self, message, can_retry):
        self.message = message
        self.can_retry = can_retry  # the upload is still open: saving again may complete it

    @classmethod
    def of(cls, exc, upload_id):
        if isinstance(exc, upload_sessions.ProviderUnreachable):
            return cls(f"{exc} Save again to finish the upload.", can_retry=True)
        session = UploadSession.objects.filter(pk=upload_id).first()
        if session is not None and exc.status in (400, 413):
            # complete() closed it, but the form's rollback reopened its row: close it again.
            try:
                upload_sessions.abandon(session)
            except Exception as cleanup_error:  # the expiry sweep removes it later
                logger.warning(
                    "Could not abandon the refused upload %s: %s", session.pk, describe_failure(cleanup_error)
                )
        return cls(f"{exc} Choose the file again.", can_retry=False)


@admin.register(PendingDeletion)
class PendingDeletionAdmin(admin.ModelAdmin):
    list_display = ("name", "provider", "attempts", "next_attempt_at", "last_error")
    list_filter = ("provider",)
    search_fields = ("name",)
    readonly_fields = ("name", "provider", "attempts", "last_error", "next_attempt_at", "created_at")

    def has_add_permission(self, request):
        return False
