from django.apps import AppConfig


class StorageBackendsConfig(AppConfig):
    name = "storage_backends"
    verbose_name = "Storage providers"

    def ready(self):
        from storage_backends import checks  # noqa: F401  (registers the system checks)
