"""Direct uploads to local disk: the client PUTs chunks to this server, in order.

Each chunk is appended to ``KEY.partial`` next to where the file will live; finishing
renames it to ``KEY``. A chunk must start where the partial file ends, so a chunk sent
twice or out of order is refused and nothing is appended; a chunk cut off midway is
cut from the file again. Appends to one upload are serialised by a lock on its file,
whichever worker receives them.
"""

import fcntl
import os

from storage_backends.direct import DirectStart, DirectUploadRefused, DirectUploads, Finished, Received

# At most this many bytes per PUT: each request stays short, and a lost connection
# costs at most one chunk.
CHUNK_SIZE = 8 * 1024 * 1024
PARTIAL_SUFFIX = ".partial"
COPY_BLOCK = 1024 * 1024


class LocalDirectUploads(DirectUploads):
    method = "local-chunked"

    def __init__(self, storage):
        self.storage = storage

    def _partial_path(self, key):
        return self.storage.path(key) + PARTIAL_SUFFIX

    def start(self, key, size, content_type, *, expires_at, part_checksum=""):
        partial = self._partial_path(key)
        os.makedirs(os.path.dirname(partial), exist_ok=True)
        with open(partial, "xb"):
            pass
        return DirectStart(target=self.target(key, {}, expires_at=expires_at), state={})

    def target(self, key, state, *, expires_at):
        # The URL is this server's own (the caller adds it): the library knows no routes.
        return {"method": self.method, "chunk_size": CHUNK_SIZE}

    def receive(self, key, state, start, stream, length, total):
        if length > CHUNK_SIZE:
            raise DirectUploadRefused(f"A chunk may hold at most {CHUNK_SIZE} bytes; this one holds {length}.")
        if start + length > total:
            raise DirectUploadRefused(
                f"The chunk ends at byte {start + length}, past the upload's declared size of {total} bytes."
            )
        try:
            partial = open(self._partial_path(key), "r+b")
        except FileNotFoundError:
            raise DirectUploadRefused("This upload takes no more bytes: it was finished or abandoned.") from None
        with partial:
            fcntl.flock(partial, fcntl.LOCK_EX)
            held = os.fstat(partial.fileno()).st_size
            if start != held:
                raise DirectUploadRefused(
                    f"The chunk starts at byte {start}, but the upload holds {held} bytes: "
                    f"send the chunk that starts at byte {held}."
                )
            partial.seek(held)
            try:
                remaining = length
                while remaining:
                    block = stream.read(min(COPY_BLOCK, remaining))
                    if not block:
                        raise DirectUploadRefused(
                            f"The chunk ended after {length - remaining} of its {length} bytes; nothing of it was kept."
                        )
                    partial.write(block)
                    remaining -= len(block)
                partial.flush()
            except BaseException:
                partial.truncate(held)
                raise
            return held + length

    def received(self, key, state):
        for path in (self._partial_path(key), self.storage.path(key)):
            try:
                return Received(os.path.getsize(path))
            except FileNotFoundError:
                continue
        return Received(0)

    def finish(self, key, state, report):
        final = self.storage.path(key)
        try:
            os.replace(self._partial_path(key), final)
        except FileNotFoundError:
            if not os.path.exists(final):
                raise FileNotFoundError(f"No upload of {key} is held on local disk") from None
        return Finished(os.path.getsize(final))

    def read_head(self, key, length):
        with open(self.storage.path(key), "rb") as stored:
            return stored.read(length)

    def probe_source(self, key):
        return self.storage.path(key)

    def abort(self, key, state):
        for path in (self._partial_path(key), self.storage.path(key)):
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
