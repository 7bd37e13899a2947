"""Where an unfinished upload is remembered, so that ``resume`` can carry it on.

A small JSON file in the user's cache folder (``$XDG_CACHE_HOME/stremora/uploads.json``,
else ``~/.cache/stremora/uploads.json``), readable by its owner only. An entry maps
the server, the file's absolute path, size and modification time to the upload's id:
a file changed since is a new upload. Nothing secret is kept (never the token); an
entry is removed once its upload completes (the file with its last entry), and
entries older than a month go.
"""

import json
import os
import tempfile
import time
from pathlib import Path

FORGET_AFTER_SECONDS = 30 * 24 * 3600


def default_state_path():
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "stremora" / "uploads.json"


def upload_key(server_url, path):
    """The entry of ``path`` on ``server_url``: changes when the file does."""
    path = Path(path).resolve()
    stat = path.stat()
    return f"{server_url.rstrip('/')} {path} {stat.st_size} {stat.st_mtime_ns}"


class ResumeState:
    def __init__(self, path=None):
        self.path = Path(path) if path is not None else default_state_path()

    def upload_id(self, key):
        entry = self._read().get(key)
        return entry.get("upload") if isinstance(entry, dict) else None

    def remember(self, key, upload_id):
        entries = self._read()
        entries[key] = {"upload": upload_id, "saved_at": int(time.time())}
        self._write(entries)

    def forget(self, key):
        entries = self._read()
        if entries.pop(key, None) is None:
            return
        if entries:
            self._write(entries)
        else:
            self.path.unlink(missing_ok=True)  # nothing left to resume: no file either

    def _read(self):
        try:
            entries = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}  # none yet, or unreadable: nothing to resume
        return entries if isinstance(entries, dict) else {}

    def _write(self, entries):
        oldest = time.time() - FORGET_AFTER_SECONDS
        entries = {
            key: entry for key, entry in entries.items()
            if isinstance(entry, dict) and entry.get("saved_at", 0) >= oldest
        }
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Written whole to a temporary file, then renamed: a kill never leaves half a file.
        descriptor, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".uploads-", suffix=".json")
        try:
            with os.fdopen(descriptor, "w") as file:
                json.dump(entries, file, indent=1, sort_keys=True)
            os.replace(temporary, self.path)
        except BaseException:
            os.unlink(temporary)
            raise
