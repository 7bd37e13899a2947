"""Whose fault a failed save is: the provider's, or the file's.

Only a provider's own faults count toward its circuit breaker: it could not be
reached, it timed out, it failed inside (5xx), it asked us to slow down (420/429),
it refused our credentials, or it answered with something that is not an answer.
An error about the file itself (a Cloudinary 400 such as "File size too large", an
S3 ``EntityTooLarge``, a name already taken) says the provider is working: the chain
still moves on to the next provider, but the breaker does not count it.

Anything not recognised here counts: a breaker that trips on an odd error costs a
cool-down, one that never trips costs a timeout on every upload.
"""

from botocore.exceptions import ClientError
from cloudinary import exceptions as cloudinary_exceptions
from django.core.exceptions import SuspiciousOperation

# Cloudinary answers 400 (BadRequest) about the request's parameters and file, and 409
# (AlreadyExists) about a public_id that is taken.
CLOUDINARY_FILE_ERRORS = (cloudinary_exceptions.BadRequest, cloudinary_exceptions.AlreadyExists)

# HTTP statuses of the 4xx range that are still the provider's (or its account's) fault.
PROVIDER_STATUSES = {401, 403, 404, 407, 408, 420, 429}
# S3 error codes sent with a 400 that are about the connection, the credentials or the
# request rate, not about the object sent.
S3_PROVIDER_CODES = {
    "AuthorizationHeaderMalformed",
    "ExpiredToken",
    "InvalidAccessKeyId",
    "InvalidToken",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "SignatureDoesNotMatch",
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "TokenRefreshRequired",
    "TooManyRequests",
}


def is_provider_fault(exc):
    """Whether ``exc``, raised while a provider stored a file, is the provider's fault."""
    if isinstance(exc, FileExistsError):
        return False  # the name is taken: the provider answered, the name was the problem
    if isinstance(exc, SuspiciousOperation):
        return False  # a name the provider will not take (e.g. outside MEDIA_ROOT)
    if isinstance(exc, CLOUDINARY_FILE_ERRORS):
        return False
    if isinstance(exc, ClientError):
        return _s3_error_is_the_providers(exc)
    return True


def _s3_error_is_the_providers(exc):
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    code = exc.response.get("Error", {}).get("Code")
    if not isinstance(status, int) or not 400 <= status < 500:
        return True  # 5xx, or no status at all: not an answer about the file
    return status in PROVIDER_STATUSES or code in S3_PROVIDER_CODES
