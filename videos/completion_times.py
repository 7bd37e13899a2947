"""How long completing a direct upload takes on each provider, learned from the last
large one, so that a client that asked for a completion in the background can be told
when to ask how it went (``Retry-After`` on the 202) instead of asking every fraction
of a second while the provider joins the parts.

Joining a large upload takes its provider time in proportion to the file (S3 copies
the parts together), so the seconds per byte of the last large completion predict the
next one's. Small completions are not learned from: their fixed costs would make a
large file's look far longer than it is. The hint is the prediction's whole seconds,
rounded down: a client told too little asks a few more times, one told too much waits
for nothing, which costs more.
"""

import logging
import math

from django.core.cache import cache

logger = logging.getLogger(__name__)

LEARN_FROM_BYTES = 32 * 1024 * 1024
MAX_HINT_SECONDS = 60
REMEMBER_SECONDS = 24 * 60 * 60


def _key(provider):
    return f"stremora:completion-seconds-per-byte:{provider}"


def record(provider, size, seconds):
    """Learn from a completion of ``size`` bytes on ``provider`` that took ``seconds``."""
    if size < LEARN_FROM_BYTES or seconds <= 0:
        return
    try:
        cache.set(_key(provider), seconds / size, REMEMBER_SECONDS)
    except Exception as exc:  # a hint is not worth failing a completion over
        logger.warning("Could not record how long completing an upload took (%s)", type(exc).__name__)


def retry_after(provider, size):
    """Whole seconds a client should wait before asking whether a ``size``-byte upload
    on ``provider`` is completed, or None when the first answer could come within a
    second (or nothing has been learned yet)."""
    try:
        seconds_per_byte = cache.get(_key(provider))
    except Exception as exc:
        logger.warning("Could not read how long completing an upload takes (%s)", type(exc).__name__)
        return None
    if not seconds_per_byte:
        return None
    seconds = math.floor(min(seconds_per_byte * size, MAX_HINT_SECONDS))
    return seconds if seconds >= 1 else None
