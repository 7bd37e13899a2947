"""Which failures are the provider's fault, as each SDK really raises them."""

import errno

import pytest
from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError, NoCredentialsError
from cloudinary import exceptions as cloudinary_exceptions
from django.core.exceptions import SuspiciousFileOperation

from storage_backends.errors import ProviderAnswerError
from storage_backends.faults import is_provider_fault


def s3_error(status, code):
    response = {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "PutObject")


@pytest.mark.parametrize(
    "exc",
    [
        cloudinary_exceptions.Error("Unexpected error - MaxRetryError(...)"),
        cloudinary_exceptions.Error("Error parsing server response (502) - b'<html>'"),
        cloudinary_exceptions.GeneralError("General Error"),
        cloudinary_exceptions.RateLimited("Rate Limit Exceeded"),
        cloudinary_exceptions.AuthorizationRequired("Invalid api_key"),
        cloudinary_exceptions.NotAllowed("Forbidden"),
        cloudinary_exceptions.NotFound("Invalid cloud_name"),
        EndpointConnectionError(endpoint_url="https://s3.amazonaws.com"),
        ConnectTimeoutError(endpoint_url="https://s3.amazonaws.com"),
        NoCredentialsError(),
        s3_error(500, "InternalError"),
        s3_error(503, "SlowDown"),
        s3_error(403, "AccessDenied"),
        s3_error(404, "NoSuchBucket"),
        s3_error(400, "RequestTimeout"),
        s3_error(400, "ExpiredToken"),
        s3_error(301, "PermanentRedirect"),
        ProviderAnswerError("Cloudinary answered an upload of x with an unexpected body"),
        OSError(errno.ENOSPC, "No space left on device"),
        PermissionError(errno.EACCES, "Permission denied"),
        TimeoutError("timed out"),
        RuntimeError("anything else"),
    ],
    ids=repr,
)
def test_faults_of_the_provider_count(exc):
    assert is_provider_fault(exc) is True


@pytest.mark.parametrize(
    "exc",
    [
        cloudinary_exceptions.BadRequest("File size too large. Got 200. Maximum is 100."),
        cloudinary_exceptions.AlreadyExists("Resource already exists"),
        s3_error(400, "EntityTooLarge"),
        s3_error(400, "InvalidArgument"),
        s3_error(400, "BadDigest"),
        FileExistsError("Cloudinary already holds a resource for videos/a.mp4"),
        SuspiciousFileOperation("Detected path traversal attempt"),
    ],
    ids=repr,
)
def test_errors_about_the_file_do_not_count(exc):
    assert is_provider_fault(exc) is False
