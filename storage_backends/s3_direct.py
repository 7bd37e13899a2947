"""Direct uploads to S3: a multipart upload the client fills through presigned URLs.

The server creates the multipart upload on the final key (private: no ACL), signs
UploadPart URLs for the client, lists the parts S3 holds so a client can resume,
and completes the upload only when the client's report of its parts matches what
S3 holds, part for part. Presigning is local computation; every other call is
bounded as a save is (``storage_backends.s3_attempts``): ``STORAGE_TIMEOUT`` for all
its requests, retries included.

A client that vanishes leaves its parts on S3 until the upload is aborted: by
``abort``, or by the bucket's lifecycle rule (docs/s3.md).
"""

import base64
import binascii
import re
import threading
from collections import Counter
from datetime import datetime, timezone

from botocore.exceptions import ClientError
from storages.utils import clean_name

from storage_backends.direct import DirectStart, DirectUploadRefused, DirectUploads, Finished, Received
from storage_backends.s3_attempts import save_attempt

MIB = 1024 * 1024
MIN_PART_SIZE = 8 * MIB
MAX_PART_COUNT = 10_000  # S3's limit
# Parts presigned in the target itself; the client asks for the others (sign_parts).
PARTS_IN_TARGET = 16
MAX_PARTS_PER_SIGNING = 100
# S3 refuses presigned URLs (SigV4) that live longer than a week.
MAX_PRESIGN_SECONDS = 7 * 24 * 60 * 60
# Part numbers a refusal names before it says how many more there are.
NUMBERS_SHOWN = 10
NOT_FOUND_CODES = ("404", "NoSuchKey", "NotFound")
# The declared type is the client's word: S3 serves the object with it, so only a video
# type is kept (a "text/html" object would render in browsers from the bucket's origin).
VIDEO_CONTENT_TYPE = re.compile(r"video/[A-Za-z0-9][A-Za-z0-9.+-]{0,100}")
PART_CHECKSUMS = ("crc32",)


def is_crc32(value):
    """Whether ``value`` is a CRC32 as S3 takes it: four bytes, base64-encoded."""
    if not isinstance(value, str) or len(value) != 8:
        return False
    try:
        return len(base64.b64decode(value, validate=True)) == 4
    except (binascii.Error, ValueError):
        return False


def part_size_for(size):
    """The smallest whole number of MiB, at least 8 MiB, that cuts ``size`` into at most 10,000 parts."""
    smallest = -(-size // MAX_PART_COUNT)
    return max(MIN_PART_SIZE, -(-smallest // MIB) * MIB)


def normalised_etag(etag):
    return etag.strip().strip('"') if isinstance(etag, str) else etag


def _error_code(exc):
    return exc.response.get("Error", {}).get("Code")


def _is_part_number(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _numbers_text(numbers):
    shown = ", ".join(str(number) for number in numbers[:NUMBERS_SHOWN])
    more = len(numbers) - NUMBERS_SHOWN
    return f"{shown} and {more} more" if more > 0 else shown


class S3DirectUploads(DirectUploads):
    method = "s3-multipart"

    def __init__(self, storage):
        self.storage = storage
        self._shared_client = None
        self._client_lock = threading.Lock()

    # What every call needs: the client, the object's key, a time bound.

    @property
    def _client(self):
        """One client for every thread. boto3's clients are thread-safe (its resources,
        of which django-storages keeps one a thread, are not), and building one costs
        about half a second of CPU with the GIL held: a background thread completing an
        upload would otherwise build its own while the web requests of its process wait."""
        if self._shared_client is None:
            with self._client_lock:
                if self._shared_client is None:
                    self._shared_client = self.storage.connection.meta.client
        return self._shared_client

    def _object_key(self, key):
        return self.storage._normalize_name(clean_name(key))

    def _bounded(self, object_key):
        """All the requests of one call within ``STORAGE_TIMEOUT``, retries included."""
        return save_attempt(self.storage.bucket_name, object_key, self.storage.timeout)

    def _upload(self, object_key, state):
        return {"Bucket": self.storage.bucket_name, "Key": object_key, "UploadId": state["upload_id"]}

    # The interface.

    def start(self, key, size, content_type, *, expires_at, part_checksum=""):
        if not _is_part_number(size) or size <= 0:
            raise DirectUploadRefused("The size of an upload must be a positive number of bytes.")
        if part_checksum and part_checksum not in PART_CHECKSUMS:
            raise DirectUploadRefused(f"S3 checks parts by {', '.join(PART_CHECKSUMS)}, not {part_checksum}.")
        object_key = self._object_key(key)
        parameters = {"Bucket": self.storage.bucket_name, "Key": object_key}
        if isinstance(content_type, str) and VIDEO_CONTENT_TYPE.fullmatch(content_type):
            parameters["ContentType"] = content_type
        if part_checksum:
            # Each part then carries its CRC32, which S3 checks, and S3 composes the
            # object's checksum from the parts' instead of reading the whole object again.
            parameters["ChecksumAlgorithm"] = part_checksum.upper()
        with self._bounded(object_key):
            upload_id = self._client.create_multipart_upload(**parameters)["UploadId"]
        part_size = part_size_for(size)
        state = {"upload_id": upload_id, "part_size": part_size, "part_count": -(-size // part_size)}
        if part_checksum:
            state["checksum"] = part_checksum
        return DirectStart(target=self.target(key, state, expires_at=expires_at), state=state)

    def target(self, key, state, *, expires_at):
        target = {"method": self.method, "part_size": state["part_size"], "part_count": state["part_count"]}
        if state.get("checksum"):
            # A part's URL is signed with its checksum: the client asks for each (sign_parts).
            return {**target, "checksum": state["checksum"], "parts": []}
        first_parts = range(1, min(state["part_count"], PARTS_IN_TARGET) + 1)
        return {**target, "parts": self._presigned_parts(key, state, first_parts, expires_at)}

    def sign_parts(self, key, state, numbers, *, expires_at, checksums=None):
        part_count = state["part_count"]
        if not isinstance(numbers, list) or not numbers:
            raise DirectUploadRefused("Name the parts to sign as a list of part numbers.")
        if len(numbers) > MAX_PARTS_PER_SIGNING:
            raise DirectUploadRefused(f"At most {MAX_PARTS_PER_SIGNING} parts can be signed at once.")
        if not all(_is_part_number(number) and 1 <= number <= part_count for number in numbers):
            raise DirectUploadRefused(f"Part numbers of this upload are whole numbers from 1 to {part_count}.")
        if state.get("checksum"):
            if not isinstance(checksums, list) or len(checksums) != len(numbers):
                raise DirectUploadRefused(
                    'This upload\'s parts carry their CRC32: send "checksums", one for each part number, in order.'
                )
            if not all(is_crc32(checksum) for checksum in checksums):
                raise DirectUploadRefused("A part's CRC32 is its four bytes in base64 (8 characters).")
        elif checksums:
            raise DirectUploadRefused("This upload was started without part checksums.")
        return self._presigned_parts(key, state, numbers, expires_at, checksums)

    def received(self, key, state):
        object_key = self._object_key(key)
        with self._bounded(object_key):
            held = self._held_parts(object_key, state)
            if held is None:
                return Received(self._finished_size(object_key), [])
        parts = [{"number": number, "size": size, "etag": etag} for number, (size, etag, _) in sorted(held.items())]
        return Received(sum(part["size"] for part in parts), parts)

    def finish(self, key, state, report):
        reported = self._reported_parts(report, state["part_count"])
        object_key = self._object_key(key)
        with self._bounded(object_key):
            held = self._held_parts(object_key, state)
            if held is None:
                return Finished(self._finished_size(object_key))
            self._check_parts(reported, held, state)
            try:
                self._client.complete_multipart_upload(
                    **self._upload(object_key, state),
                    MultipartUpload={"Parts": [self._completed_part(n, held[n]) for n, _ in reported]},
                )
            except ClientError as exc:
                code = _error_code(exc)
                if code in ("InvalidPart", "InvalidPartOrder", "EntityTooSmall"):
                    # A part was sent again between the listing and the completion.
                    raise DirectUploadRefused(
                        "The parts changed while the upload was being completed; list them again and retry."
                    ) from exc
                if code != "NoSuchUpload":
                    raise
                return Finished(self._finished_size(object_key))  # completed meanwhile by another request
            # The object is the listed parts joined: their sizes are its size, with no HeadObject.
            return Finished(sum(held[number][0] for number, _ in reported))

    def read_head(self, key, length):
        object_key = self._object_key(key)
        with self._bounded(object_key):
            try:
                answer = self._client.get_object(
                    Bucket=self.storage.bucket_name, Key=object_key, Range=f"bytes=0-{length - 1}"
                )
            except ClientError as exc:
                if _error_code(exc) in NOT_FOUND_CODES:
                    raise FileNotFoundError(f"S3 holds no object {key}") from exc
                raise
            with answer["Body"] as body:
                return body.read(length)

    def probe_source(self, key):
        # What storage.url() gives, signed with the shared client.
        return self._client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.storage.bucket_name, "Key": self._object_key(key)},
            ExpiresIn=self.storage.querystring_expire,
        )

    def abort(self, key, state):
        object_key = self._object_key(key)
        with self._bounded(object_key):
            try:
                self._client.abort_multipart_upload(**self._upload(object_key, state))
            except ClientError as exc:
                if _error_code(exc) != "NoSuchUpload":
                    raise
            self._client.delete_object(Bucket=self.storage.bucket_name, Key=object_key)

    # Helpers.

    def _presigned_parts(self, key, state, numbers, expires_at, checksums=None):
        """The parts' UploadPart URLs; with ``checksums``, each signed with its part's
        CRC32, which the client must send as ``x-amz-checksum-crc32``."""
        object_key = self._object_key(key)
        seconds_left = int((expires_at - datetime.now(timezone.utc)).total_seconds())
        expires_in = max(1, min(seconds_left, MAX_PRESIGN_SECONDS))
        checksums = checksums or [None] * len(numbers)
        return [
            {
                "number": number,
                "url": self._client.generate_presigned_url(
                    "upload_part",
                    Params={
                        **self._upload(object_key, state),
                        "PartNumber": number,
                        **({"ChecksumCRC32": checksum} if checksum else {}),
                    },
                    ExpiresIn=expires_in,
                ),
            }
            for number, checksum in zip(numbers, checksums)
        ]

    @staticmethod
    def _completed_part(number, held_part):
        """A part as CompleteMultipartUpload lists it: with its CRC32 when S3 holds one
        (an upload started with part checksums must list them)."""
        size, etag, crc32 = held_part
        return {"PartNumber": number, "ETag": etag, **({"ChecksumCRC32": crc32} if crc32 else {})}

    def _held_parts(self, object_key, state):
        """{number: (size, etag, crc32 or None)} of the parts S3 holds; None when the
        multipart upload is over (completed: the object's size tells; aborted:
        FileNotFoundError follows)."""
        held = {}
        try:
            for page in self._client.get_paginator("list_parts").paginate(**self._upload(object_key, state)):
                for part in page.get("Parts", []):
                    held[part["PartNumber"]] = (
                        part["Size"], normalised_etag(part["ETag"]), part.get("ChecksumCRC32")
                    )
        except ClientError as exc:
            if _error_code(exc) != "NoSuchUpload":
                raise
            return None
        return held

    def _finished_size(self, object_key):
        try:
            return self._client.head_object(Bucket=self.storage.bucket_name, Key=object_key)["ContentLength"]
        except ClientError as exc:
            if _error_code(exc) in NOT_FOUND_CODES:
                raise FileNotFoundError(f"S3 holds neither the upload nor the object {object_key}") from exc
            raise

    @staticmethod
    def _reported_parts(report, part_count):
        """[(number, etag)] from the client's report, which must list parts 1..part_count in order."""
        parts = report.get("parts") if isinstance(report, dict) else None
        if not isinstance(parts, list) or not all(
            isinstance(part, dict)
            and _is_part_number(part.get("number"))
            and isinstance(part.get("etag"), str)
            and part["etag"].strip()
            for part in parts
        ):
            raise DirectUploadRefused('"parts" must list every part of the upload as {"number", "etag"}.')
        numbers = [part["number"] for part in parts]
        unknown = sorted({number for number in numbers if not 1 <= number <= part_count})
        if unknown:
            raise DirectUploadRefused(
                f"This upload has parts 1 to {part_count}; there is no part {_numbers_text(unknown)}."
            )
        missing = sorted(set(range(1, part_count + 1)) - set(numbers))
        if missing:
            raise DirectUploadRefused(f"Parts missing from the list: {_numbers_text(missing)}.")
        repeated = sorted(number for number, times in Counter(numbers).items() if times > 1)
        if repeated:
            raise DirectUploadRefused(f"Parts listed more than once: {_numbers_text(repeated)}.")
        for before, after in zip(numbers, numbers[1:]):
            if after < before:
                raise DirectUploadRefused(
                    f"The parts must be listed in order from 1 to {part_count}: part {after} comes after part {before}."
                )
        return [(part["number"], normalised_etag(part["etag"])) for part in parts]

    @staticmethod
    def _check_parts(reported, held, state):
        """The parts the client reports are the parts S3 holds, each of the size the target set."""
        part_size, part_count = state["part_size"], state["part_count"]
        not_held = [number for number, _ in reported if number not in held]
        if not_held:
            raise DirectUploadRefused(f"S3 holds no part {_numbers_text(not_held)}: send it (again).")
        mismatched = [number for number, etag in reported if held[number][1] != etag]
        if mismatched:
            raise DirectUploadRefused(
                f"The ETag of part {_numbers_text(mismatched)} does not match the part S3 holds: "
                "send the part again or report the ETag S3 answered."
            )
        for number, _ in reported:
            size = held[number][0]
            if number < part_count and size != part_size:
                raise DirectUploadRefused(
                    f"Part {number} is {size} bytes; every part but the last is {part_size} bytes."
                )
            if number == part_count and not 0 < size <= part_size:
                raise DirectUploadRefused(f"The last part, {number}, is {size} bytes; it is 1 to {part_size} bytes.")
