"""What the storage chain tells whoever listens (metrics, the admin's event record).

Each signal is sent with ``send_robust``: a receiver that fails is logged and never
fails the upload it was told about. Receivers must be quick; they run in the request.

``file_stored``   a file landed: ``provider``, ``name`` (the stored name), ``size``
                  (bytes, None when unknown), ``failures`` (a tuple of
                  ``ProviderFailure``, one per provider tried or passed over before it,
                  each with its ``kind``) and ``via``: ``"upload"`` (through the
                  chain), ``"direct"`` (a direct upload, sent by the app when it
                  completes) or ``"move"`` (a copy to another provider).
``store_failed``  no provider could store a file: ``name``, ``failures``, ``via``
                  (``"direct"``: a direct upload's client reported its last provider
                  unreachable).
``store_uncertain`` a provider failed to store a file in a way that does not say the
                  file is not there (a fault: a timeout, a dropped connection, a 5xx;
                  botocore's retries hide which attempt failed how), so it may have
                  landed: ``provider``, ``name`` (the stored name it has there if it
                  did) and ``reason``. Sent for uploads only: no video uses that name.
``provider_called`` a call to one provider ended (``timed``): ``provider``,
                  ``operation`` (``save``, ``open``, ``delete``, ``exists``, ``size``,
                  ``url``, ``signed_url``, ``md5``, ``check``; the app's direct uploads add
                  ``direct_start`` and the like), ``seconds`` (wall time)
                  and ``error`` (the exception it raised, None when it answered).
"""

import logging
import time
from contextlib import contextmanager

from django.dispatch import Signal

logger = logging.getLogger(__name__)

file_stored = Signal()
store_failed = Signal()
store_uncertain = Signal()
provider_called = Signal()


def send(signal, **details):
    """``signal.send_robust`` from the chain, logging what a receiver raised."""
    for receiver, result in signal.send_robust(sender="storage_backends", **details):
        if isinstance(result, Exception):
            logger.error("A receiver of a storage signal failed (%s): %r", getattr(receiver, "__qualname__", receiver),
                         result)


@contextmanager
def timed(provider, operation):
    """Send ``provider_called`` once the block, a call to ``provider``, has ended."""
    started = time.perf_counter()
    error = None
    try:
        yield
    except BaseException as exc:
        error = exc
        raise
    finally:
        send(provider_called, provider=provider, operation=operation, seconds=time.perf_counter() - started,
             error=error)
