from django.apps import AppConfig


class VideosConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "videos"

    def ready(self):
        from videos import metrics  # noqa: F401  (its receivers count the storage signals)
