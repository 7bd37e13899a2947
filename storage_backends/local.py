"""Local disk as a provider: Django's FileSystemStorage under MEDIA_ROOT."""

import os

from django.core.files.storage import FileSystemStorage
from django.utils.deconstruct import deconstructible

from storage_backends.names import UniqueNamesMixin


@deconstructible(path="storage_backends.local.LocalStorage")
class LocalStorage(UniqueNamesMixin, FileSystemStorage):
    provider = "local"

    def _save(self, name, content):
        path = self.path(name)
        existed_before = os.path.exists(path)
        try:
            return super()._save(name, content)
        except BaseException:
            # A write cut short (disk full, interrupted) leaves no partial file behind.
            if not existed_before and os.path.exists(path):
                os.remove(path)
            raise
