"""What can go wrong, said in one readable line."""

from urllib.parse import urlsplit

import requests


class UploadError(Exception):
    """The upload did not happen; the message says why in one line, without a credential."""


class ServerRefused(UploadError):
    """Stremora answered a call with an error; ``status`` is its HTTP status."""

    def __init__(self, message, status, retry_after=None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class NoProviderLeft(UploadError):
    """Every provider failed: the server has none left for the upload."""


class TargetFailed(Exception):
    """The provider's target could not take the bytes; ``reason`` goes to ``fail/``."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def describe_network_error(error, url):
    """What went wrong reaching ``url``, naming its host only: a presigned URL's query
    string is a credential while it lives, and requests puts it in its messages."""
    host = urlsplit(url).netloc or "the server"
    if isinstance(error, requests.Timeout):
        return f"no answer from {host} in time"
    if isinstance(error, requests.ConnectionError):
        text = str(error).lower()
        if "refused" in text:
            return f"connection to {host} refused"
        if "reset" in text or "aborted" in text or "broken pipe" in text:
            return f"connection to {host} cut"
        if "name or service" in text or "resolve" in text:
            return f"cannot resolve {host}"
        return f"cannot reach {host}"
    return f"{type(error).__name__} talking to {host}"


def message_of(response):
    """The error a Stremora or provider answer carries, in one line (DRF's ``detail``,
    its field errors, Cloudinary's ``error.message``, else the status)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    parts = []
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            parts.append(str(error["message"]))
        elif "detail" in body:
            parts.append(str(body["detail"]))
        else:
            for field, value in body.items():
                messages = value if isinstance(value, list) else [value]
                text = " ".join(str(message) for message in messages)
                parts.append(text if field == "non_field_errors" else f"{field}: {text}")
    elif isinstance(body, list):
        parts.extend(str(message) for message in body)
    text = "; ".join(parts) or f"HTTP {response.status_code} {response.reason or ''}".strip()
    return " ".join(text.split())
