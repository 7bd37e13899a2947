"""Local disk as a provider: Django's FileSystemStorage under MEDIA_ROOT."""

import hashlib
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from django.core.files.storage import FileSystemStorage
from django.utils.deconstruct import deconstructible

from storage_backends.inventory import StoredFile
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

    def iter_files(self):
        root = Path(self.location)
        if not root.is_dir():
            return
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink():
                stat = path.stat()
                yield StoredFile(
                    key=path.relative_to(root).as_posix(),
                    size=stat.st_size,
                    modified=datetime.fromtimestamp(stat.st_mtime, tz=timezone.utc),
                )

    def check(self):
        """Raise unless MEDIA_ROOT exists (or can be made) and takes a file."""
        os.makedirs(self.location, exist_ok=True)
        with tempfile.TemporaryFile(dir=self.location):
            pass

    def md5(self, name):
        digest = hashlib.md5()
        with self.open(name, "rb") as stored:
            for block in iter(lambda: stored.read(1024 * 1024), b""):
                digest.update(block)
        return digest.hexdigest()
