"""Cloudinary as a Django Storage, on the ``cloudinary`` SDK.

A stored name such as ``videos/2026/11/clip_k2P9xQa.mp4`` maps to the public_id
``stremora/videos/2026/11/clip_k2P9xQa`` with resource_type ``video`` and format
``mp4``: videos are ``video`` resources, images ``image``, anything else ``raw``
(whose public_id keeps its extension, as Cloudinary wants).

New files go under ``CLOUDINARY_FOLDER``. A name that carries no folder lives under
``stremora/``, the folder of every upload before the setting existed; a file uploaded
under another folder carries it, before a colon (``site1:videos/clip_k2P9xQa.mp4`` is
``site1/videos/clip_k2P9xQa``), so changing the setting leaves stored names readable.

``public_id_names`` reads names the way django-cloudinary-storage wrote them: the
name is the public_id itself, of the resource type its storage class gave it.

Every call carries the account and the timeout itself; the SDK's global
``cloudinary.config()`` is never touched, so two storages with different accounts
can live in one process. The SDK's shared HTTP connectors are replaced once, by
connectors that never retry a connection (see ``bound_sdk_connections``).
"""

import collections
import os
import posixpath
import tempfile
import threading
from datetime import datetime, timezone

import cloudinary
import urllib3
from cloudinary import api as cloudinary_api
from cloudinary import exceptions as cloudinary_exceptions
from cloudinary import uploader
from cloudinary import utils as cloudinary_utils
from cloudinary.api_client import call_api as cloudinary_call_api
from cloudinary.utils import cloudinary_url
from django.core.files import File
from django.core.files.storage import Storage
from django.utils.deconstruct import deconstructible

from storage_backends.cloudinary_direct import CloudinaryDirectUploads
from storage_backends.errors import ProviderAnswerError
from storage_backends.inventory import StoredFile
from storage_backends.names import UniqueNamesMixin, unique_name
from storage_backends.registry import ProviderSpec

VIDEO_EXTENSIONS = {"mp4", "m4v", "mov", "webm", "mkv", "avi", "mpeg", "mpg", "ogv", "3gp", "flv", "wmv"}
IMAGE_EXTENSIONS = {"jpg", "jpeg", "png", "gif", "webp", "bmp", "tif", "tiff", "avif", "heic"}

# The SDK's own chunk size; Cloudinary wants every chunk but the last to be >= 5 MB.
DEFAULT_CHUNK_SIZE = 20_000_000
# Files read into memory for download are spilled to disk past this size.
SPOOL_MAX_MEMORY = 8 * 1024 * 1024
# Where the SDK's delivery URLs start; ``delivery_prefix`` replaces it (a CDN, a test server).
CLOUDINARY_DELIVERY_PREFIX = "https://res.cloudinary.com"
# Resources per page of the Admin API's listing (its maximum).
LISTING_PAGE_SIZE = 500
# Upload answers kept for the caller to read back (``upload_details``), newest last.
RECENT_UPLOADS_KEPT = 1000
# Uploads whose name turns out to be taken are retried under a fresh name this often.
NAME_ATTEMPTS = 3
# The folder of names that carry none: every upload before CLOUDINARY_FOLDER existed.
DEFAULT_FOLDER = "stremora"
# Between a name's folder, when it carries one, and its path.
FOLDER_SEPARATOR = ":"


# How the SDK's connectors retry: never. urllib3's default, which the SDK keeps, opens a
# connection that timed out three more times, so a host that drops packets would cost
# four timeouts per call; a read that failed is not retried either. Redirects are followed.
SDK_RETRIES = urllib3.Retry(total=None, connect=0, read=0, status=0, other=0, redirect=3)

_sdk_connections_lock = threading.Lock()
_sdk_connections_bounded = False


def bound_sdk_connections():
    """Give the SDK's Upload and Admin API connectors that try each connection once.

    The SDK keeps one module-level urllib3 connector per API (``uploader._http``,
    ``api_client.call_api._http``) and reads it on every call; this process is its
    only user, so they are replaced here, once, by connectors built the SDK's own way.
    """
    global _sdk_connections_bounded
    with _sdk_connections_lock:
        if _sdk_connections_bounded:
            return
        options = {**cloudinary.CERT_KWARGS, "retries": SDK_RETRIES}
        uploader._http = cloudinary_utils.get_http_connector(cloudinary.config(), options)
        cloudinary_call_api._http = cloudinary_utils.get_http_connector(cloudinary.config(), options)
        _sdk_connections_bounded = True


class _Unclosable:
    """A read-only view of a file that ignores ``close()``.

    ``uploader.upload_large`` closes the stream it is given; the fallback chain
    still needs it for the next provider.
    """

    def __init__(self, file):
        self._file = file
        self.name = os.path.basename(getattr(file, "name", None) or "upload")

    def read(self, size=-1):
        return self._file.read(size)

    def seek(self, offset, whence=os.SEEK_SET):
        return self._file.seek(offset, whence)

    def tell(self):
        return self._file.tell()

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False


@deconstructible(path="storage_backends.cloudinary.CloudinaryStorage")
class CloudinaryStorage(UniqueNamesMixin, Storage):
    provider = "cloudinary"

    def __init__(
        self,
        cloud_name,
        api_key,
        api_secret,
        upload_prefix=None,
        folder=DEFAULT_FOLDER,
        timeout=30.0,
        chunk_size=DEFAULT_CHUNK_SIZE,
        delivery_prefix=None,
    ):
        self.cloud_name = cloud_name
        self.api_key = api_key
        self.api_secret = api_secret
        self.upload_prefix = upload_prefix
        self.folder = folder.strip("/")
        self.timeout = timeout
        self.chunk_size = chunk_size
        self.delivery_prefix = delivery_prefix.rstrip("/") if delivery_prefix else None
        self._recent_uploads = collections.OrderedDict()
        self._recent_lock = threading.Lock()
        self._http = urllib3.PoolManager(retries=urllib3.Retry(total=2, read=0, redirect=3))
        self.direct_uploads = CloudinaryDirectUploads(self)
        bound_sdk_connections()

    def __repr__(self):
        return f"<CloudinaryStorage cloud={self.cloud_name}>"

    # -- mapping names to Cloudinary resources -------------------------------

    def resource_of(self, name):
        """``(public_id, resource_type, format)`` of a stored name."""
        folder, name = self._folder_and_path(name)
        root, dot_ext = posixpath.splitext(name)
        extension = dot_ext[1:].lower()
        if extension in VIDEO_EXTENSIONS:
            resource_type, public_path, file_format = "video", root, extension
        elif extension in IMAGE_EXTENSIONS:
            resource_type, public_path, file_format = "image", root, extension
        else:
            resource_type, public_path, file_format = "raw", name, None
        return f"{folder}/{public_path}", resource_type, file_format

    @staticmethod
    def _folder_and_path(name):
        folder, separator, path = name.partition(FOLDER_SEPARATOR)
        if not separator:
            folder, path = DEFAULT_FOLDER, name
        return folder, path.replace("\\", "/").lstrip("/")

    def new_key(self, name):
        """The stored name of a new upload of ``name``: with this storage's folder unless it is the default."""
        return name if self.folder == DEFAULT_FOLDER else f"{self.folder}{FOLDER_SEPARATOR}{name}"

    def path_of(self, name):
        """``name`` without the folder it may carry: the name a copy on another provider takes."""
        return self._folder_and_path(name)[1]

    def public_id_names(self, resource_type):
        """This storage reading names as django-cloudinary-storage wrote them, for a field
        of ``resource_type`` (video, image or raw): the same account and connections."""
        view = object.__new__(PublicIdNamesStorage)
        view.__dict__.update(self.__dict__)
        view.resource_type = resource_type
        return view

    @property
    def _folder_prefix(self):
        """What every public_id of this storage's new uploads starts with."""
        return f"{self.folder}/"

    def _account(self):
        options = {
            "cloud_name": self.cloud_name,
            "api_key": self.api_key,
            "api_secret": self.api_secret,
            "timeout": self.timeout,
        }
        if self.upload_prefix:
            options["upload_prefix"] = self.upload_prefix
        return options

    # -- Storage API ---------------------------------------------------------

    def _save(self, name, content):
        for _ in range(NAME_ATTEMPTS):
            key = self.new_key(name)
            result = self._upload(key, content)
            if not result.get("existing"):
                self._remember_upload(key, result)
                return key
            # overwrite=False found the public_id taken: never replace another file.
            name = unique_name(name)
        raise FileExistsError(f"Cloudinary already holds a resource for {name}")

    def _upload(self, name, content):
        public_id, resource_type, _ = self.resource_of(name)
        options = {
            **self._account(),
            "public_id": public_id,
            "resource_type": resource_type,
            "overwrite": False,
            "unique_filename": False,
            "use_filename": False,
        }
        stream = _Unclosable(content)
        stream.seek(0)
        size = content.size
        if size is None or size > self.chunk_size:
            result = uploader.upload_large(stream, chunk_size=self.chunk_size, filename=stream.name, **options)
        else:
            result = uploader.upload(stream, filename=stream.name, **options)
        if not isinstance(result, dict) or result.get("public_id") != public_id:
            # The answer does not describe our file: it may still have landed.
            self._discard(public_id, resource_type)
            raise ProviderAnswerError(f"Cloudinary answered an upload of {public_id} with an unexpected body")
        if not result.get("existing") and size is not None and result.get("bytes") not in (None, size):
            self._discard(public_id, resource_type)
            raise ProviderAnswerError(
                f"Cloudinary stored {result.get('bytes')} bytes of {public_id}, {size} were sent"
            )
        return result

    def _discard(self, public_id, resource_type):
        try:
            uploader.destroy(public_id, resource_type=resource_type, type="upload", **self._account())
        except Exception:
            pass  # cleanup_orphans finds whatever this could not remove

    def delete(self, name):
        public_id, resource_type, _ = self.resource_of(name)
        result = uploader.destroy(
            public_id, resource_type=resource_type, type="upload", invalidate=True, **self._account()
        )
        if result.get("result") not in ("ok", "not found"):
            raise ProviderAnswerError(f"Cloudinary could not delete {public_id}: {result.get('result')!r}")

    def _resource(self, name):
        public_id, resource_type, _ = self.resource_of(name)
        return cloudinary_api.resource(public_id, resource_type=resource_type, type="upload", **self._account())

    def exists(self, name):
        try:
            self._resource(name)
        except cloudinary_exceptions.NotFound:
            return False
        return True

    def size(self, name):
        try:
            return int(self._resource(name)["bytes"])
        except cloudinary_exceptions.NotFound:
            raise FileNotFoundError(f"Cloudinary holds no resource for {name}") from None

    def md5(self, name):
        """Cloudinary's etag of a resource: the MD5 of its bytes."""
        try:
            return self._resource(name).get("etag")
        except cloudinary_exceptions.NotFound:
            raise FileNotFoundError(f"Cloudinary holds no resource for {name}") from None

    def url(self, name):
        public_id, resource_type, file_format = self.resource_of(name)
        return self._delivery_url(public_id, resource_type, file_format)

    def poster_url(self, name):
        """A still frame of a video, cut by Cloudinary on delivery; None for other files."""
        public_id, resource_type, _ = self.resource_of(name)
        return self._delivery_url(public_id, resource_type, "jpg") if resource_type == "video" else None

    def upload_details(self, name):
        """What Cloudinary said of a file this process just uploaded (``duration``), once."""
        with self._recent_lock:
            return self._recent_uploads.pop(name, {})

    def _remember_upload(self, name, result):
        with self._recent_lock:
            self._recent_uploads[name] = {"duration": result.get("duration")}
            while len(self._recent_uploads) > RECENT_UPLOADS_KEPT:
                self._recent_uploads.popitem(last=False)

    def _delivery_url(self, public_id, resource_type, file_format):
        options = {"resource_type": resource_type, "type": "upload", "secure": True, "cloud_name": self.cloud_name}
        if file_format:
            options["format"] = file_format
        url = cloudinary_url(public_id, **options)[0]
        if self.delivery_prefix and url.startswith(CLOUDINARY_DELIVERY_PREFIX):
            url = self.delivery_prefix + url[len(CLOUDINARY_DELIVERY_PREFIX) :]
        return url

    def _open(self, name, mode="rb"):
        if "w" in mode or "a" in mode or "+" in mode:
            raise ValueError("Cloudinary files are opened for reading only")
        response = self.delivery(name)
        try:
            spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX_MEMORY)
            for chunk in response.stream(1024 * 1024):
                spool.write(chunk)
            spool.seek(0)
        finally:
            response.release_conn()
        return File(spool, name=name)

    def delivery(self, name, first_bytes=None):
        """The answer to a GET of a stored file's delivery URL (of its first ``first_bytes``
        only, with a range), its body unread; FileNotFoundError or ProviderAnswerError
        when it is not the file."""
        ranged = first_bytes is not None
        response = self._http.request(
            "GET",
            self.url(name),
            headers={"Range": f"bytes=0-{first_bytes - 1}"} if ranged else None,
            preload_content=False,
            timeout=urllib3.Timeout(connect=self.timeout, read=self.timeout),
        )
        if response.status in ((200, 206) if ranged else (200,)):
            return response
        response.close()  # the error's body is not wanted, nor its connection back in the pool
        if response.status == 404:
            raise FileNotFoundError(f"Cloudinary holds no resource for {name}")
        what = "a ranged read" if ranged else "a download"
        raise ProviderAnswerError(f"Cloudinary answered HTTP {response.status} to {what} of {name}")

    def name_of(self, resource):
        """The stored name of a resource from the Admin API (``resource_of`` reversed)."""
        public_id = resource["public_id"]
        if not public_id.startswith(self._folder_prefix):
            return None
        path = public_id[len(self._folder_prefix) :]
        if resource.get("resource_type") in ("video", "image") and resource.get("format"):
            path = f"{path}.{resource['format']}"
        return self.new_key(path)

    def iter_files(self):
        for resource_type in ("video", "image", "raw"):
            cursor = None
            while True:
                options = {"next_cursor": cursor} if cursor else {}
                page = cloudinary_api.resources(
                    resource_type=resource_type,
                    type="upload",
                    prefix=self._folder_prefix,
                    max_results=LISTING_PAGE_SIZE,
                    **self._account(),
                    **options,
                )
                for resource in page.get("resources", []):
                    name = self.name_of({"resource_type": resource_type, **resource})
                    if name is not None:
                        yield StoredFile(
                            key=name,
                            public_id=resource["public_id"],
                            size=int(resource.get("bytes") or 0),
                            modified=datetime.strptime(resource["created_at"], "%Y-%m-%dT%H:%M:%SZ").replace(
                                tzinfo=timezone.utc
                            ),
                        )
                cursor = page.get("next_cursor")
                if not cursor:
                    break

    def check(self):
        """One Admin API ping: the API answers and accepts the key and secret."""
        cloudinary_api.ping(**self._account())


class PublicIdNamesStorage(CloudinaryStorage):
    """A Cloudinary storage reading names the way django-cloudinary-storage wrote them.

    That library stored the public_id itself as the name (``media/videos/clip_ab12cd``:
    its ``PREFIX``, ``MEDIA_URL`` by default, the upload's folder, the file name with
    Cloudinary's random suffix, no extension), and took the resource type from its
    storage class (``VideoMediaCloudinaryStorage``: video; ``MediaCloudinaryStorage``:
    image; ``RawMediaCloudinaryStorage``: raw). URLs, reads, deletions and checks go to
    that resource; new files are never stored through this view.
    """

    resource_type = "video"

    def resource_of(self, name):
        return name.replace("\\", "/"), self.resource_type, None

    def _resource_types(self):
        """The field's resource type, then the other of video and image: a name read
        without its field (a queued deletion, a check) still finds its resource."""
        return [self.resource_type, *{"video": ["image"], "image": ["video"]}.get(self.resource_type, [])]

    def _resource(self, name):
        public_id = self.resource_of(name)[0]
        for resource_type in self._resource_types():
            try:
                return cloudinary_api.resource(public_id, resource_type=resource_type, type="upload", **self._account())
            except cloudinary_exceptions.NotFound:
                continue
        raise cloudinary_exceptions.NotFound(f"Resource not found - {public_id}")

    def delete(self, name):
        public_id = self.resource_of(name)[0]
        for resource_type in self._resource_types():
            result = uploader.destroy(
                public_id, resource_type=resource_type, type="upload", invalidate=True, **self._account()
            )
            if result.get("result") == "ok":
                return
            if result.get("result") != "not found":
                raise ProviderAnswerError(f"Cloudinary could not delete {public_id}: {result.get('result')!r}")

    def path_of(self, name):
        """A copy on another provider keeps the public_id, with the format Cloudinary reports."""
        file_format = self._resource(name).get("format")
        return f"{name}.{file_format}" if file_format and self.resource_type != "raw" else name

    def _save(self, name, content):
        raise NotImplementedError("New files are stored under Stremora's own names, never as public_ids.")


def _from_settings():
    from django.conf import settings

    return CloudinaryStorage(
        folder=settings.CLOUDINARY_FOLDER,
        cloud_name=settings.CLOUDINARY_CLOUD_NAME,
        api_key=settings.CLOUDINARY_API_KEY,
        api_secret=settings.CLOUDINARY_API_SECRET,
        upload_prefix=settings.CLOUDINARY_UPLOAD_PREFIX,
        delivery_prefix=settings.CLOUDINARY_DELIVERY_PREFIX,
        timeout=settings.STORAGE_TIMEOUT,
    )


PROVIDER = ProviderSpec(
    name="cloudinary",
    label="Cloudinary",
    build=_from_settings,
    required_settings={"CLOUDINARY_URL": ("CLOUDINARY_CLOUD_NAME", "CLOUDINARY_API_KEY", "CLOUDINARY_API_SECRET")},
    built_from=frozenset(
        {
            "CLOUDINARY_CLOUD_NAME",
            "CLOUDINARY_API_KEY",
            "CLOUDINARY_API_SECRET",
            "CLOUDINARY_UPLOAD_PREFIX",
            "CLOUDINARY_DELIVERY_PREFIX",
            "CLOUDINARY_FOLDER",
            "STORAGE_TIMEOUT",
        }
    ),
    secret_settings=("CLOUDINARY_API_KEY", "CLOUDINARY_API_SECRET"),
    max_mb_setting="CLOUDINARY_MAX_MB",
)
