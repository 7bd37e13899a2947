"""How long completing a direct upload takes on each provider, learned from the last
large one, so that a client that asked for a completion in the background can be told
when to ask how it went (``Retry-After`` on the 202) instead of asking every fraction
of a second while the provider joins the parts.

The prediction for a file is the time the last large completion took, scaled down for
a smaller file and never up. Joining takes S3 time in proportion to the file, but
looking a file up on Cloudinary or renaming it on local disk takes the same time for
any size: a larger file's prediction may be short, never long. Small completions are
not learned from (their fixed costs say little of a large file's). The hint is the
prediction to the nearest second (``Retry-After`` takes whole seconds), none under
half a second: a client told too little asks a few more times, one told too much
waits for nothing.
"""

import logging
import math

from django.core.cache import cache

logger = logging.getLogger(__name__)

LEARN_FROM_BYTES = 32 * 1024 * 1024
MAX_HINT_SECONDS = 60
REMEMBER_SECONDS = 24 * 60 * 60


def _key(provider):
    return f"stremora:completion-time:{provider}"


def record(provider, size, seconds):
    """Learn from a completion of ``size`` bytes on ``provider`` that took ``seconds``."""
    if size < LEARN_FROM_BYTES or seconds <= 0:
        return
    try:
        cache.set(_key(provider), (seconds, size), REMEMBER_SECONDS)
    except Exception as exc:  # a hint is not worth failing a completion over
        logger.warning("Could not record how long completing an upload took (%s)", type(exc).__name__)


def retry_after(provider, size):
    """Whole seconds a client should wait before asking whether a ``size``-byte upload
    on ``provider`` is completed, or None when the first answer could come within a
    second (or nothing has been learned yet)."""
    try:
        learned = cache.get(_key(provider))
    except Exception as exc:
        logger.warning("Could not read how long completing an upload takes (%s)", type(exc).__name__)
        return None
    if not learned:
        return None
    seconds, learned_size = learned
    expected = seconds * min(1, size / learned_size)
    hint = math.floor(min(expected, MAX_HINT_SECONDS) + 0.5)
    return hint if hint >= 1 else None
