"""Exceptions raised by the storage providers and the fallback chain."""

from dataclasses import dataclass


@dataclass(frozen=True)
class ProviderFailure:
    """Why one provider did not store a file: its name and a credential-free reason."""

    provider: str
    reason: str

    def __str__(self):
        return f"{self.provider}: {self.reason}"


class StorageUnavailable(OSError):
    """No provider of the chain could store the file; nothing was stored."""

    def __init__(self, failures):
        self.failures = tuple(failures)
        detail = "; ".join(str(failure) for failure in self.failures) or "no provider is configured"
        super().__init__(f"No storage provider could store the file ({detail}).")


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
