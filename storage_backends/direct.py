"""Direct uploads: the client sends the bytes to the provider; the server signs and checks.

A provider that can take them gives its Storage a ``direct_uploads`` attribute, a
``DirectUploads``; one that cannot has ``direct_uploads = None`` (or none at all) and
is passed over. Every method takes the stored ``key`` (the provider's name for the
file, without the provider prefix) and the ``state`` its ``start`` returned: a small
JSON-able dict that the caller keeps (in the upload session) and hands back, so that
any web worker can carry on any upload.

Nothing here trusts the client: ``finish`` asks the provider what it holds, and the
caller checks the size and the first bytes (``read_head``) before it uses the file.
"""

from dataclasses import dataclass, field


class DirectUploadRefused(Exception):
    """What the client asked or reported does not fit the upload (parts missing or out of
    order, a chunk past the declared size, a result for another file). The message is
    safe to show to the client; the provider is not at fault."""


@dataclass
class DirectStart:
    target: dict  # what the client needs to send the bytes (JSON); "method" names the protocol
    state: dict  # what the server keeps to carry on (JSON)


@dataclass
class Received:
    received_bytes: int | None  # None when the provider cannot tell before the upload finishes
    parts: list = field(default_factory=list)  # multipart targets: [{"number", "size", "etag"}]


@dataclass
class Finished:
    size: int  # what the provider holds, in bytes
    details: dict = field(default_factory=dict)  # what the provider said of it (``duration``)


class DirectUploads:
    """The interface; each provider module implements it over its SDK."""

    method = None  # "s3-multipart", "cloudinary-chunked", "local-chunked"

    def stored_key(self, key):
        """The provider's stored name of the file an upload to ``key`` makes."""
        return key

    def start(self, key, size, content_type, *, expires_at, part_checksum="") -> DirectStart:
        """Open an upload of ``size`` bytes to ``key`` that may run until ``expires_at``
        (an aware datetime). May call the provider (S3 creates the multipart upload).
        ``part_checksum`` ``"crc32"``: the client sends each part's CRC32, which the
        provider checks (multipart targets; the others ignore it)."""
        raise NotImplementedError

    def target(self, key, state, *, expires_at) -> dict:
        """The target as the client needs it now (signatures made afresh)."""
        raise NotImplementedError

    def sign_parts(self, key, state, numbers, *, expires_at, checksums=None) -> list:
        """Multipart targets: ``[{"number", "url"}]`` for the parts ``numbers``, each URL
        bound to its part's checksum (``checksums``, in the same order) when the upload
        was started with one."""
        raise DirectUploadRefused("This upload's target has no parts to sign.")

    def receive(self, key, state, start, stream, length, total) -> int:
        """Targets the server itself receives (local disk): append ``length`` bytes read
        from ``stream`` at offset ``start`` of ``total``; returns the bytes held."""
        raise DirectUploadRefused("This upload's bytes go to its provider, not to this server.")

    def received(self, key, state) -> Received:
        """What the provider holds of the upload so far, so that a client can resume."""
        raise NotImplementedError

    def finish(self, key, state, report) -> Finished:
        """Make the upload a whole file at ``key`` (S3 completes its multipart upload) and
        say what the provider holds. ``report`` is what the client sent to complete it
        (``parts`` for S3, ``public_id`` for Cloudinary). Raises FileNotFoundError when
        the provider holds no such file, DirectUploadRefused when the report does not
        fit. Safe to call again after it succeeded."""
        raise NotImplementedError

    def read_head(self, key, length) -> bytes:
        """The first ``length`` bytes of the finished file (a ranged read)."""
        raise NotImplementedError

    def probe_source(self, key) -> str | None:
        """A path or URL from which ffprobe can read the finished file with ranged reads,
        or None when the provider reports duration and poster itself (Cloudinary)."""
        return None

    def abort(self, key, state) -> None:
        """Remove whatever the upload left: partial data and, if finished, the file."""
        raise NotImplementedError
