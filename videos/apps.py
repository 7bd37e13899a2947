from django.apps import AppConfig


class VideosConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "videos"

    def ready(self):
        from storage_backends import signals
        from videos import metrics  # noqa: F401  (its receivers count the storage signals)
        from videos import services, storage_events

        signals.file_stored.connect(storage_events.record_stored, dispatch_uid="videos.storage_events.stored")
        signals.store_failed.connect(storage_events.record_failed, dispatch_uid="videos.storage_events.failed")
        signals.store_uncertain.connect(services.queue_uncertain_file, dispatch_uid="videos.services.uncertain")
