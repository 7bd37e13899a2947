"""How long completing a direct upload takes on each provider, learned from the last
large ones, so that a client that asked for a completion in the background is told
when to ask how it went (``retry_after``) instead of asking every fraction of a second
while the provider joins the parts.

The expected time for a file is the median of the times the last few large
completions took, each scaled down for a smaller file and never up. Joining takes S3
time in proportion to the file, but looking a file up on Cloudinary or renaming it on
local disk takes the same time for any size: a larger file's expectation may be
short, never long. Small completions are not learned from (their fixed costs say
little of a large file's), and the median keeps one completion slowed by a busy moment
from telling the next clients to wait for nothing. Two completions recorded at once
may keep only one of the two: a sample lost costs nothing.

A client is told to ask again when the completion is expected to be done; once it is
overdue (a busy job queue, a slow provider), after half as long as it is overdue, so
that the clients of a late completion ask less and less often.
"""

import logging
import statistics

from django.core.cache import cache

logger = logging.getLogger(__name__)

LEARN_FROM_BYTES = 32 * 1024 * 1024
SAMPLES = 5
REMEMBER_SECONDS = 24 * 60 * 60
# Seconds a client is told to wait: at least the shortest, at most the longest, and at
# most OVERDUE_RETRY_MAX once the completion is overdue.
RETRY_AFTER_MIN = 0.1
RETRY_AFTER_MAX = 60
OVERDUE_RETRY_MAX = 1.0


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


def expected_seconds(provider, size):
    """How long completing a ``size``-byte upload on ``provider`` should take, or None
    when nothing has been learned."""
    try:
        samples = cache.get(_key(provider))
    except Exception as exc:
        logger.warning("Could not read how long completing an upload takes (%s)", type(exc).__name__)
        return None
    if not samples:
        return None
    return statistics.median(seconds * min(1, size / learned_size) for seconds, learned_size in samples)


def retry_after(provider, size, elapsed):
    """Seconds after which a client should ask how the completion of a ``size``-byte
    upload on ``provider``, begun ``elapsed`` seconds ago, went; None when nothing has
    been learned."""
    expected = expected_seconds(provider, size)
    if expected is None:
        return None
    remaining = expected - elapsed
    wait = min(remaining, RETRY_AFTER_MAX) if remaining > 0 else min(-remaining / 2, OVERDUE_RETRY_MAX)
    return round(max(wait, RETRY_AFTER_MIN), 2)
