"""How long completing a direct upload takes on each provider, learned from the last
large ones, so that a client that asked for a completion in the background can be told
when to ask how it went (``Retry-After`` on the 202) instead of asking every fraction
of a second while the provider joins the parts.

The prediction for a file is the median of the times the last few large completions
took, each scaled down for a smaller file and never up. Joining takes S3 time in
proportion to the file, but looking a file up on Cloudinary or renaming it on local
disk takes the same time for any size: a larger file's prediction may be short, never
long. Small completions are not learned from (their fixed costs say little of a large
file's), and the median keeps one completion slowed by a busy moment from telling the
next clients to wait for nothing. Two completions recorded at once may keep only one
of the two: a sample lost costs nothing. The hint is the prediction to the nearest
second (``Retry-After`` takes whole seconds), none under half a second: a client told
too little asks a few more times, one told too much waits for nothing.
"""

import logging
import math
import statistics

from django.core.cache import cache

logger = logging.getLogger(__name__)

LEARN_FROM_BYTES = 32 * 1024 * 1024
SAMPLES = 5
MAX_HINT_SECONDS = 60
REMEMBER_SECONDS = 24 * 60 * 60


def _key(provider):
    return f"stremora:completion-time:{provider}"


def record(provider, size, seconds):
    """Learn from a completion of ``size`` bytes on ``provider`` that took ``seconds``."""
    if size < LEARN_FROM_BYTES or seconds <= 0:
        return
    try:
        samples = cache.get(_key(provider)) or []
        cache.set(_key(provider), [*samples, (seconds, size)][-SAMPLES:], REMEMBER_SECONDS)
    except Exception as exc:  # a hint is not worth failing a completion over
        logger.warning("Could not record how long completing an upload took (%s)", type(exc).__name__)


def retry_after(provider, size):
    """Whole seconds a client should wait before asking whether a ``size``-byte upload
    on ``provider`` is completed, or None when the first answer could come within a
    second (or nothing has been learned yet)."""
    try:
        samples = cache.get(_key(provider))
    except Exception as exc:
        logger.warning("Could not read how long completing an upload takes (%s)", type(exc).__name__)
        return None
    if not samples:
        return None
    expected = statistics.median(seconds * min(1, size / learned_size) for seconds, learned_size in samples)
    hint = math.floor(min(expected, MAX_HINT_SECONDS) + 0.5)
    return hint if hint >= 1 else None
