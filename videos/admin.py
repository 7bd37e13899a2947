from django.contrib import admin
from django.template.defaultfilters import filesizeformat

from videos import services
from videos.models import Video


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
