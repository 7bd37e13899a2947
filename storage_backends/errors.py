"""Exceptions raised by the storage providers and the fallback chain."""

from dataclasses import dataclass


class FailureKind:
    """Why a provider did not take a file, in a word: metrics and the dashboard group by it."""

    NOT_CONFIGURED = "not_configured"
    CIRCUIT_OPEN = "circuit_open"  # passed over: open, or half-open with its trial taken
    FAULT = "fault"  # the provider failed (counted against its breaker)
    FILE = "file"  # an error about the file itself (not counted)
    TOO_LARGE = "too_large"  # above the provider's size limit: skipped without trying (not counted)


@dataclass(frozen=True)
class ProviderFailure:
    """Why one provider did not store a file: its name, a credential-free reason and
    its ``FailureKind``."""

    provider: str
    reason: str
    kind: str = FailureKind.FAULT

    def __str__(self):
        return f"{self.provider}: {self.reason}"


class StorageUnavailable(OSError):
    """No provider of the chain could store the file; nothing was stored."""

    def __init__(self, failures):
        self.failures = tuple(failures)
        detail = "; ".join(str(failure) for failure in self.failures) or "no provider is configured"
        super().__init__(f"No storage provider could store the file ({detail}).")


class TooLargeForProviders(StorageUnavailable):
    """The file is larger than every configured provider takes: no retry will store it.

    ``largest`` is the largest size in bytes any of them takes.
    """

    def __init__(self, failures, size, largest):
        super().__init__(failures)
        self.size = size
        self.largest = largest


class ProviderNotConfigured(OSError):
    """A stored name points at a provider that has no credentials in this deployment."""

    # A template showing such a file (the admin's file widget) renders no link
    # instead of failing the whole page.
    silent_variable_failure = True

    def __init__(self, provider):
        self.provider = provider
        super().__init__(f"The {provider} storage provider is not configured.")


class ProviderAnswerError(OSError):
    """A provider answered, but not with what the request asked for."""
