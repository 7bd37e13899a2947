"""What the storage chain tells whoever listens (metrics, the admin's event record).

Each signal is sent with ``send_robust``: a receiver that fails is logged and never
fails the upload it was told about. Receivers must be quick; they run in the request.

``file_stored``   a file landed: ``provider``, ``name`` (the stored name), ``size``
                  (bytes, None when unknown), ``failures`` (a tuple of
                  ``ProviderFailure``, one per provider tried or passed over before it,
                  each with its ``kind``) and ``via``: ``"upload"`` (through the
                  chain), ``"direct"`` (a direct upload, sent by the app when it
                  completes) or ``"move"`` (a copy to another provider).
``store_failed``  no provider could store a file: ``name``, ``failures``, ``via``.
"""

import logging

from django.dispatch import Signal

logger = logging.getLogger(__name__)

file_stored = Signal()
store_failed = Signal()


def send(signal, **details):
    """``signal.send_robust`` from the chain, logging what a receiver raised."""
    for receiver, result in signal.send_robust(sender="storage_backends", **details):
        if isinstance(result, Exception):
            logger.error("A receiver of a storage signal failed (%s): %r", getattr(receiver, "__qualname__", receiver),
                         result)
