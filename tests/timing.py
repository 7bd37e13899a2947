"""What one provider attempt may cost: the contract's bound plus room for a loaded machine."""

# The contract: an attempt costs at most STORAGE_TIMEOUT plus a second, whatever the fault.
CONTRACT_EXTRA = 1.0
# The suite runs on two CPUs shared with other runs: scheduling delays, the chain's own
# work and the next provider's save come on top of the provider's attempt.
LOADED_MACHINE_MARGIN = 1.0


def attempt_bound(storage_timeout):
    """Seconds a save may take when its first provider fails in any way and the next takes it."""
    return storage_timeout + CONTRACT_EXTRA + LOADED_MACHINE_MARGIN
