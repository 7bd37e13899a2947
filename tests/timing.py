"""What one provider attempt may cost: the contract's bound plus room for a loaded machine."""

import time

from django.core.files.base import ContentFile

from storage_backends.chain import FallbackStorage
from tests.factories import sha256

# The contract: an attempt costs at most STORAGE_TIMEOUT plus a second, whatever the fault.
CONTRACT_EXTRA = 1.0
# The suite runs on two CPUs shared with other runs: scheduling delays, the chain's own
# work and the next provider's save come on top of the provider's attempt.
LOADED_MACHINE_MARGIN = 1.0


def attempt_bound(storage_timeout):
    """Seconds a save may take when its first provider fails in any way and the next takes it."""
    return storage_timeout + CONTRACT_EXTRA + LOADED_MACHINE_MARGIN


def save_through_a_fault(proxy, mode, mode_bytes, content, media_root, storage_timeout):
    """Save ``content`` through the chain while ``proxy`` injects ``mode``; check it
    landed on local disk, byte for byte, within one attempt's bound.

    The bound counts from when the provider stopped making progress: for a stall, the
    moment the proxy went silent (parts or chunks that landed before renew the time).
    """
    proxy.set_mode(mode, **({"bytes": mode_bytes} if mode_bytes else {}))
    started = time.monotonic()
    name = FallbackStorage().save("videos/clip.mp4", ContentFile(content))
    finished = time.monotonic()

    assert name.startswith("local:")
    assert sha256((media_root / name.removeprefix("local:")).read_bytes()) == sha256(content)
    fault_began = proxy.stalled_at if mode == "stall_after" else started
    assert fault_began is not None
    assert finished - fault_began < attempt_bound(storage_timeout)
