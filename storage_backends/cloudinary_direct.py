"""Direct uploads to Cloudinary: the client posts signed chunks to Cloudinary's Upload API.

The server chooses the public_id (which carries the project's folder) and signs it with
``overwrite=false`` and a timestamp, through the SDK's own signing; a client that changes
any of them, or posts to another public_id, gets Cloudinary's "Invalid Signature". The
chunks go as ``uploader.upload_large`` sends them: multipart form data with the signed
fields and the ``file`` chunk, ``Content-Range`` and one ``X-Unique-Upload-Id``.

Cloudinary accepts a signature for one hour after its timestamp, so ``target`` signs
afresh each time it is asked. It cannot report a chunked upload before its last chunk,
and drops unfinished ones itself: ``received`` knows only the finished resource, and
``finish`` looks it up through the Admin API rather than trusting the client's answer.
"""

import secrets
import time

from cloudinary import api as cloudinary_api
from cloudinary import exceptions as cloudinary_exceptions
from cloudinary import utils as cloudinary_utils

from storage_backends.direct import DirectStart, DirectUploadRefused, DirectUploads, Finished, Received

# Where the Upload API is when the storage names no ``upload_prefix``.
CLOUDINARY_API_PREFIX = "https://api.cloudinary.com"
# What Cloudinary verifies unless an account is switched to SHA-256; the SDK's own
# uploads sign with it too (its ``signature_algorithm`` default).
SIGNATURE_ALGORITHM = cloudinary_utils.SIGNATURE_SHA1


class CloudinaryDirectUploads(DirectUploads):
    method = "cloudinary-chunked"

    def __init__(self, storage):
        self.storage = storage

    def stored_key(self, key):
        return self.storage.new_key(key)  # under CLOUDINARY_FOLDER

    def _video(self, key):
        """The public_id of ``key``, which must name a video."""
        public_id, resource_type, _ = self.storage.resource_of(self.stored_key(key))
        if resource_type != "video":
            raise DirectUploadRefused("Only videos can be uploaded straight to Cloudinary.")
        return public_id

    def start(self, key, size, content_type, *, expires_at, part_checksum=""):
        state = {
            "public_id": self._video(key),
            "resource_type": "video",
            "unique_upload_id": secrets.token_hex(16),
        }
        return DirectStart(target=self.target(key, state, expires_at=expires_at), state=state)

    def target(self, key, state, *, expires_at):
        storage = self.storage
        signed = {
            "public_id": state["public_id"],
            "overwrite": "false",
            "timestamp": str(int(time.time())),
        }
        signature = cloudinary_utils.api_sign_request(signed, storage.api_secret, SIGNATURE_ALGORITHM)
        prefix = (storage.upload_prefix or CLOUDINARY_API_PREFIX).rstrip("/")
        return {
            "method": self.method,
            "url": f"{prefix}/v1_1/{storage.cloud_name}/video/upload",
            "chunk_size": storage.chunk_size,
            "unique_upload_id": state["unique_upload_id"],
            "fields": {**signed, "api_key": storage.api_key, "signature": signature},
        }

    def _lookup(self, state):
        return cloudinary_api.resource(
            state["public_id"], resource_type="video", type="upload", **self.storage._account()
        )

    def received(self, key, state):
        try:
            resource = self._lookup(state)
        except cloudinary_exceptions.NotFound:
            return Received(received_bytes=None)
        return Received(received_bytes=int(resource["bytes"]))

    def finish(self, key, state, report):
        reported = report.get("public_id")
        if reported is not None and reported != state["public_id"]:
            raise DirectUploadRefused("The upload answered for another file.")
        try:
            resource = self._lookup(state)
        except cloudinary_exceptions.NotFound:
            raise FileNotFoundError(f"Cloudinary holds no resource for {key}") from None
        return Finished(size=int(resource["bytes"]), details={"duration": resource.get("duration")})

    def read_head(self, key, length):
        response = self.storage.delivery(self.stored_key(key), first_bytes=length)
        try:
            return response.read(length)
        finally:
            # Whatever the body holds past ``length`` (all of it, if a 200 ignored the
            # range) is not wanted: its connection is closed rather than drained.
            response.close()

    def abort(self, key, state):
        # Cloudinary keeps no partial upload a client could finish later; only a whole resource.
        self.storage.delete(self.stored_key(key))
