"""S3 failures: the reply table (code, status, the call's context) and client-side faults.

S3 needs one piece of context the exception does not carry: whether the call reads an object
named by a message (``source=True``: the video of an event, the frame of a task) or touches
storage of our own (frames and results buckets). A missing object is the event's fault in the
first case and ours in the second; a missing bucket is always infrastructure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from boto3.exceptions import RetriesExceededError, S3UploadFailedError
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
    SSLError,
    TokenRetrievalError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from video_runner.adapters.error_classes.local import LOCAL_FAULTS
from video_runner.errors import (
    AccessProblem,
    ConfigurationError,
    DependencyUnavailable,
    ErrorCode,
    InvalidMessage,
    OutputRejected,
    SourceMissing,
)

#: Error codes of S3 that say the request was signed with credentials that do not work.
S3_CREDENTIAL_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "InvalidSecurity",
        "AuthorizationHeaderMalformed",
        "RequestTimeTooSkewed",
        "AccountProblem",
        "NotSignedUp",
    }
)
#: A refusal that names no reason: the credentials may be bad, or only this object refused.
S3_DENIED_CODES = frozenset({"AccessDenied", "AllAccessDisabled", "403", "Forbidden"})
S3_THROTTLING_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "TooManyRequests",
        "RequestLimitExceeded",
        "ServiceUnavailable",
        "InternalError",
        "RequestTimeout",
        "OperationAborted",
        "IncompleteBody",
        "BadDigest",
        "XAmzContentSHA256Mismatch",
    }
)
S3_MISSING_OBJECT_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
S3_MISSING_BUCKET_CODES = frozenset({"NoSuchBucket"})
S3_BAD_NAME_CODES = frozenset({"InvalidBucketName", "KeyTooLongError"})
#: 408 Request Timeout, 409 Conflict (a concurrent operation), 429 Too Many Requests.
_S3_RETRIABLE_4XX = frozenset({408, 409, 429})
_HTTP_CLIENT_ERROR = 400
_HTTP_UNAUTHORIZED = 401
_HTTP_FORBIDDEN = 403
_HTTP_SERVER_ERROR = 500


def s3_error_code(exc: ClientError) -> str:
    """The S3 error code of a reply; a HEAD reply has no body, so it is the HTTP status."""
    error: dict[str, Any] = dict(exc.response.get("Error", {}))
    return str(error.get("Code", ""))


def s3_status(exc: ClientError) -> int:
    metadata: dict[str, Any] = dict(exc.response.get("ResponseMetadata", {}))
    return int(metadata.get("HTTPStatusCode") or 0)


def is_s3_plain_denial(exc: Exception) -> bool:
    """A 403 that does not say whether our credentials or only this object are refused.

    AWS answers a HEAD on a missing key with a bare 403 when the caller may not list the bucket;
    the adapter tells the cases apart by checking the credentials on another request, then passes
    ``credentials_valid`` to :func:`classify_s3`.
    """
    exc = _unwrap_s3(exc)
    return isinstance(exc, ClientError) and s3_error_code(exc) in S3_DENIED_CODES


@dataclass(frozen=True, slots=True)
class _Reply:
    """What a row of the S3 table looks at: the reply and the call's context."""

    code: str
    status: int
    source: bool
    credentials_valid: bool
    said: str


def _rejected(message: str) -> Exception:
    return OutputRejected(message, code=ErrorCode.STORAGE_REJECTED)


def _unreadable(message: str) -> Exception:
    return SourceMissing(message, code=ErrorCode.SOURCE_UNREADABLE)


def _bad_name(message: str) -> Exception:
    return InvalidMessage(message, code=ErrorCode.BAD_ID)


def _s3_down(message: str) -> Exception:
    return DependencyUnavailable("s3", message)


def _s3_access(message: str) -> Exception:
    return AccessProblem("s3", message)


#: The S3 table, first match wins: (row, does it match, the error it becomes).
S3_REPLY_TABLE: tuple[tuple[str, Callable[[_Reply], bool], Callable[[_Reply], Exception]], ...] = (
    (
        "throttling, 5xx, 408/409/429",
        lambda r: (
            r.code in S3_THROTTLING_CODES
            or r.status >= _HTTP_SERVER_ERROR
            or r.status in _S3_RETRIABLE_4XX
        ),
        lambda r: _s3_down(r.said),
    ),
    (
        "credentials refused",
        lambda r: r.code in S3_CREDENTIAL_CODES or r.status == _HTTP_UNAUTHORIZED,
        lambda r: _s3_access(f"{r.said}: the credentials are refused"),
    ),
    (
        "source refused to working credentials",
        lambda r: r.code in S3_DENIED_CODES and r.source and r.credentials_valid,
        lambda r: _unreadable(
            f"{r.said}: refused although the credentials work (on AWS also a missing key "
            "without s3:ListBucket)"
        ),
    ),
    (
        "access denied",
        lambda r: r.code in S3_DENIED_CODES,
        lambda r: _s3_access(f"{r.said}: access denied (credentials or permissions)"),
    ),
    (
        "source object missing",
        lambda r: r.code in S3_MISSING_OBJECT_CODES and r.source,
        lambda r: SourceMissing(f"{r.said}: no such object"),
    ),
    (
        # Only an object can be the message's fault: a bucket is infrastructure (the buckets an
        # event may name are configured). A HEAD cannot tell them apart (no body, just 404), so
        # a download from a missing bucket still reads as a missing object, and never stalls.
        # A read of an object of ours that is gone is ours to redo (the repair loops do).
        "bucket missing, or object of ours missing",
        lambda r: r.code in S3_MISSING_BUCKET_CODES | S3_MISSING_OBJECT_CODES,
        lambda r: _s3_access(f"{r.said}: missing from storage"),
    ),
    (
        "source name invalid",
        lambda r: r.code in S3_BAD_NAME_CODES and r.source,
        lambda r: _bad_name(f"{r.said}: not a valid S3 name"),
    ),
    (
        "bucket name of ours invalid",
        lambda r: r.code == "InvalidBucketName",
        lambda r: ConfigurationError(f"{r.said}: a bucket name of our settings is invalid"),
    ),
    (
        "other 403 on storage of ours",
        lambda r: r.status == _HTTP_FORBIDDEN and not r.source,
        lambda r: _s3_access(f"{r.said}: refused on storage of ours"),
    ),
    (
        "other 4xx on a source",
        lambda r: _HTTP_CLIENT_ERROR <= r.status < _HTTP_SERVER_ERROR and r.source,
        lambda r: _unreadable(f"{r.said}: S3 refuses to serve it"),
    ),
    (
        "other 4xx on a write of ours",
        lambda r: _HTTP_CLIENT_ERROR <= r.status < _HTTP_SERVER_ERROR,
        lambda r: _rejected(f"{r.said}: S3 refuses it"),
    ),
    (
        "anything else",
        lambda _r: True,
        lambda r: _s3_down(f"{r.said}: unexpected reply ({r.status})"),
    ),
)


def _param_error(exc: Exception, what: str, source: bool) -> Exception:
    # botocore refuses the request before sending it: a bucket name or key S3 cannot take.
    if source:
        return _bad_name(f"{what}: not a valid S3 name: {exc}")
    return ConfigurationError(f"{what}: not a valid S3 name: {exc}")


#: The table of client-side exceptions, first match wins; ``source`` is the call's context.
S3_CLIENT_TABLE: tuple[
    tuple[tuple[type[Exception], ...], Callable[[Exception, str, bool], Exception]], ...
] = (
    ((ParamValidationError,), _param_error),
    (
        (
            NoCredentialsError,
            PartialCredentialsError,
            CredentialRetrievalError,
            TokenRetrievalError,
        ),
        lambda exc, what, _s: _s3_access(f"{what}: no usable credentials: {exc}"),
    ),
    (
        (SSLError,),
        lambda exc, what, _s: _s3_access(f"{what}: TLS verification failed: {exc}"),
    ),
    (
        (
            BotoConnectionError,
            HTTPClientError,
            IncompleteReadError,
            RetriesExceededError,
            S3UploadFailedError,
        ),
        lambda exc, what, _s: _s3_down(f"{what}: {type(exc).__name__}: {exc}"),
    ),
    (
        # The remaining botocore errors are client-side configuration (region, endpoint, ...).
        (BotoCoreError,),
        lambda exc, what, _s: ConfigurationError(f"{what}: {type(exc).__name__}: {exc}"),
    ),
)


def classify_s3(
    exc: Exception, *, what: str = "s3", source: bool = False, credentials_valid: bool = False
) -> Exception:
    """Map an exception of boto3/botocore onto the project's tree.

    Args:
        exc: what boto3 raised.
        what: the operation, for the message (``"download s3://videos/a.mp4"``).
        source: the call reads an object named by a message (an event's video, a task's frame):
            a missing object or bucket and an invalid name are then that message's fault.
        credentials_valid: the credentials were seen working on another request, so a plain
            ``AccessDenied`` on a source object is about that object, not about us.

    Returns:
        The error to raise; ``exc`` itself when it is none of S3's (a bug stays a bug).
    """
    exc = _unwrap_s3(exc)
    if isinstance(exc, ClientError):
        code = s3_error_code(exc)
        status = s3_status(exc) or _status_of_code(code)
        reply = _Reply(code, status, source, credentials_valid, f"{what}: {code or status}")
        make = next(make for _row, matches, make in S3_REPLY_TABLE if matches(reply))
        return make(reply)
    for kinds, convert in S3_CLIENT_TABLE:
        if isinstance(exc, kinds):
            return convert(exc, what, source)
    if isinstance(exc, OSError) and exc.errno in LOCAL_FAULTS:
        return DependencyUnavailable("disk", f"{what}: {exc}")
    return exc


def _unwrap_s3(exc: Exception) -> Exception:
    # boto3's upload_file re-raises a ClientError as a message-only S3UploadFailedError.
    cause = exc.__context__
    if isinstance(exc, S3UploadFailedError) and isinstance(cause, ClientError):
        return cause
    return exc


def _status_of_code(code: str) -> int:
    # A HEAD reply's code is its status ("404"); a stub or a proxy may leave the status out.
    return int(code) if code.isdigit() else 0
