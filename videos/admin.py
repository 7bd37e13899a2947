from django.contrib import admin
from django.template.defaultfilters import filesizeformat

from videos import services
from videos.models import PendingDeletion, Video


@admin.register(Video)
class VideoAdmin(admin.ModelAdmin):
    list_display = ("title", "owner", "storage_provider", "size", "is_published", "created_at")
    list_filter = ("storage_provider", "is_published")
    search_fields = ("title", "description")
    list_select_related = ("owner",)
    date_hierarchy = "created_at"
    raw_id_fields = ("owner",)
    readonly_fields = (
        "storage_provider",
        "size_bytes",
        "content_type",
        "duration_seconds",
        "created_at",
        "updated_at",
    )
    fieldsets = (
        (None, {"fields": ("title", "description", "owner", "is_published")}),
        ("Files", {"fields": ("file", "thumbnail")}),
        (
            "Storage",
            {"fields": ("storage_provider", "size_bytes", "content_type", "duration_seconds")},
        ),
        ("History", {"fields": ("created_at", "updated_at")}),
    )

    @admin.display(description="size", ordering="size_bytes")
    def size(self, video):
        return filesizeformat(video.size_bytes)

    def get_changeform_initial_data(self, request):
        return {"owner": request.user.pk, **super().get_changeform_initial_data(request)}

    def save_model(self, request, obj, form, change):
        services.save_video(obj, file_changed="file" in form.changed_data)

    def delete_model(self, request, obj):
        services.delete_video(obj)

    def delete_queryset(self, request, queryset):
        for video in queryset:
            services.delete_video(video)


@admin.register(PendingDeletion)
class PendingDeletionAdmin(admin.ModelAdmin):
    list_display = ("name", "provider", "attempts", "next_attempt_at", "last_error")
    list_filter = ("provider",)
    search_fields = ("name",)
    readonly_fields = ("name", "provider", "attempts", "last_error", "next_attempt_at", "created_at")

    def has_add_permission(self, request):
        return False
