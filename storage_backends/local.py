"""Local disk as a provider: Django's FileSystemStorage under MEDIA_ROOT.

Besides its plain URL (``/media/KEY``), a file has signed URLs that expire, as S3's
presigned ones do: ``/media/KEY?expires=UNIX_TIME&signature=HMAC``. The HMAC
(SECRET_KEY, Django's signing) covers the key and the expiry, so a signed URL works
for that file only and until that time only. Whoever serves the file checks it
with ``check_signature``.
"""

import hashlib
import os
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlencode

from django.conf import settings
from django.core import signing
from django.core.files.storage import FileSystemStorage
from django.utils.deconstruct import deconstructible

from storage_backends.inventory import StoredFile
from storage_backends.local_direct import LocalDirectUploads
from storage_backends.names import UniqueNamesMixin
from storage_backends.registry import ProviderSpec


SIGNED_URL_SALT = "storage_backends.local.signed-url"


@deconstructible(path="storage_backends.local.LocalStorage")
class LocalStorage(UniqueNamesMixin, FileSystemStorage):
    provider = "local"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.direct_uploads = LocalDirectUploads(self)

    def signed_url(self, name, expire=None):
        """A URL of ``name`` that works for ``expire`` seconds (default ``AWS_S3_URL_EXPIRY``)."""
        if expire is None:
            expire = settings.AWS_S3_URL_EXPIRY
        expires = int(time.time() + expire)
        query = urlencode({"expires": expires, "signature": _signer().signature(_signed_value(name, expires))})
        return f"{self.url(name)}?{query}"

    def check_signature(self, name, expires, signature):
        """Return the expiry (Unix time) of a signed URL of ``name`` that is still valid.

        Raises ``signing.BadSignature`` when ``expires`` and ``signature`` were not made
        by ``signed_url`` for this very name (or are missing), and
        ``signing.SignatureExpired`` when they were but their time is past.
        """
        if not expires or not signature or not expires.isdigit():
            raise signing.BadSignature("No signature, or no expiry")
        _signer().unsign(f"{_signed_value(name, expires)}:{signature}")  # constant-time, key fallbacks too
        if int(expires) <= time.time():
            raise signing.SignatureExpired(f"The signed URL of {name} expired")
        return int(expires)

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


def _signer():
    return signing.Signer(salt=SIGNED_URL_SALT)


def _signed_value(name, expires):
    return f"{expires}/{name}"


# The local provider reads MEDIA_ROOT and MEDIA_URL itself, as FileSystemStorage does.
PROVIDER = ProviderSpec(name="local", label="Local disk", build=LocalStorage, max_mb_setting="LOCAL_MAX_MB")
