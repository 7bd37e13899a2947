"""What a provider holds: the listing that housekeeping (orphan cleanup) walks.

Each provider's Storage lists its own files (``iter_files``) and answers a cheap
health check (``check``); this module names what they yield.
"""

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class StoredFile:
    key: str  # the provider's name for it, without the provider prefix
    size: int
    modified: datetime  # aware, UTC
    public_id: str | None = None  # Cloudinary's: a django-cloudinary-storage row names the file by it
