"""One table of error classes: what each S3, Kafka and MongoDB failure means for the work at hand.

The adapters call these pure functions on whatever their library raised and raise the result.
Three outcomes (see ``video_runner.errors`` for the tree, docs/operations.md for what an operator
sees):

* ``DependencyUnavailable``: the server did not answer, throttled us, or answered 5xx. Retried
  with backoff, without limit and without commit: waiting loses nothing.
* ``AccessProblem`` (a ``ConfigurationError``): the server answers but refuses *us*: credentials,
  permissions, TLS trust, a bucket or topic of ours missing or misnamed. Never the event's fault,
  so never a failure: fatal at start-up, waited out with an alert mid-run.
* a ``PermanentError`` with a precise code: the refusal is about *this* event's name or object,
  and the same request will be refused forever. Dead-lettered and recorded at once.

Anything else is returned unchanged, so that a genuinely unknown failure stays "unexpected" in
the consumer loop (a few tries, then ``internal``) instead of being retried forever.

S3 needs one piece of context the exception does not carry: whether the call reads an object
named by a message (``source=True``: the video of an event, the frame of a task) or touches
storage of our own (frames and results buckets). A missing object is the event's fault in the
first case and ours in the second; a missing bucket is always infrastructure.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import errors as kafka_errors
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
from bson.errors import InvalidDocument
from pymongo import errors as mongo_errors

from video_runner.errors import (
    AccessProblem,
    ConfigurationError,
    DependencyUnavailable,
    ErrorCode,
    InvalidMessage,
    OutputRejected,
    SourceMissing,
)

# --- S3 ---------------------------------------------------------------------------------------

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
#: Local resource faults while streaming a transfer to or from disk: they pass, the event is fine.
_LOCAL_FAULTS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EMFILE, errno.ENFILE, errno.EIO})


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
    if isinstance(exc, OSError) and exc.errno in _LOCAL_FAULTS:
        return DependencyUnavailable("disk", f"{what}: {exc}")
    return exc


def is_local_fault(exc: BaseException) -> bool:
    """A fault of this machine, not of the message: a full disk, no memory, no file handles.

    Waited out like a dependency that is down: failing the event for it would fail every event.
    """
    return isinstance(exc, MemoryError) or (isinstance(exc, OSError) and exc.errno in _LOCAL_FAULTS)


def _unwrap_s3(exc: Exception) -> Exception:
    # boto3's upload_file re-raises a ClientError as a message-only S3UploadFailedError.
    cause = exc.__context__
    if isinstance(exc, S3UploadFailedError) and isinstance(cause, ClientError):
        return cause
    return exc


def _status_of_code(code: str) -> int:
    # A HEAD reply's code is its status ("404"); a stub or a proxy may leave the status out.
    return int(code) if code.isdigit() else 0


# --- Kafka ------------------------------------------------------------------------------------

_KAFKA_ACCESS = (
    kafka_errors.TopicAuthorizationFailedError,
    kafka_errors.GroupAuthorizationFailedError,
    kafka_errors.ClusterAuthorizationFailedError,
    kafka_errors.TransactionalIdAuthorizationFailed,
    kafka_errors.SaslAuthenticationFailed,
    kafka_errors.AuthenticationFailedError,
    kafka_errors.AuthenticationMethodNotSupported,
    kafka_errors.UnsupportedSaslMechanismError,
    kafka_errors.IllegalSaslStateError,
    kafka_errors.SecurityDisabled,
    kafka_errors.DelegationTokenExpired,
    kafka_errors.DelegationTokenAuthorizationFailed,
)
_KAFKA_CONFIGURATION = (
    kafka_errors.InvalidTopicError,
    kafka_errors.InvalidRequiredAcksError,
    kafka_errors.InvalidSessionTimeoutError,
    kafka_errors.InvalidConfigurationError,
    kafka_errors.InvalidGroupIdError,
    kafka_errors.KafkaConfigurationError,
    kafka_errors.IncompatibleBrokerVersion,
    kafka_errors.UnrecognizedBrokerVersion,
    kafka_errors.UnsupportedVersionError,
    kafka_errors.UnsupportedCodecError,
    kafka_errors.PolicyViolationError,
)
_KAFKA_TOO_LARGE = (
    kafka_errors.MessageSizeTooLargeError,
    kafka_errors.RecordTooLargeError,
    kafka_errors.RecordListTooLargeError,
)
#: Not flagged retriable by aiokafka, but they pass: timeouts, leaders moving, group churn.
_KAFKA_TRANSIENT = (
    kafka_errors.KafkaTimeoutError,
    kafka_errors.KafkaUnavailableError,
    kafka_errors.BrokerNotAvailableError,
    kafka_errors.ReplicaNotAvailableError,
    kafka_errors.QuotaViolationError,
    kafka_errors.RebalanceInProgressError,
    kafka_errors.IllegalGenerationError,
    kafka_errors.UnknownMemberIdError,
    kafka_errors.ProducerClosed,
    kafka_errors.Cancelled,
)


def classify_kafka(exc: Exception, *, what: str = "kafka") -> Exception:
    """Map an exception of aiokafka onto the project's tree.

    ``MessageSizeTooLargeError`` (the broker's limit) and ``RecordTooLargeError`` (the producer's
    ``max_request_size``) are permanent for the message being written: ``OutputRejected`` with
    ``message_too_large``. Authorization and SASL failures are ``AccessProblem``; an invalid
    topic name or an unsupported option is a ``ConfigurationError``; everything aiokafka flags
    ``retriable``, timeouts and group churn are ``DependencyUnavailable``.
    """
    if isinstance(exc, _KAFKA_TOO_LARGE):
        return OutputRejected(
            f"{what}: the message is over the broker's size limit: {exc}",
            code=ErrorCode.MESSAGE_TOO_LARGE,
        )
    if isinstance(exc, _KAFKA_ACCESS):
        return AccessProblem("kafka", f"{what}: {type(exc).__name__}: {exc}")
    if isinstance(exc, _KAFKA_CONFIGURATION):
        return ConfigurationError(f"{what}: {type(exc).__name__}: {exc}")
    if isinstance(exc, _KAFKA_TRANSIENT) or (
        isinstance(exc, kafka_errors.KafkaError) and exc.retriable
    ):
        return DependencyUnavailable("kafka", f"{what}: {type(exc).__name__}: {exc}")
    if isinstance(exc, TimeoutError | ConnectionError):
        return DependencyUnavailable("kafka", f"{what}: {type(exc).__name__}: {exc}")
    return exc


# --- MongoDB ----------------------------------------------------------------------------------

MONGO_DUPLICATE_KEY = 11000
#: AuthenticationFailed, Unauthorized, UserNotFound.
MONGO_ACCESS_CODES = frozenset({18, 13, 11})
#: Codes that pass: elections, shutdowns, network, time limits, write concern, conflicts,
#: throttling (16500 on Cosmos DB's API), a cursor lost to a failover.
MONGO_TRANSIENT_CODES = frozenset(
    {
        6,  # HostUnreachable
        7,  # HostNotFound
        43,  # CursorNotFound
        50,  # MaxTimeMSExpired
        64,  # WriteConcernFailed
        89,  # NetworkTimeout
        91,  # ShutdownInProgress
        112,  # WriteConflict
        134,  # ReadConcernMajorityNotAvailableYet
        189,  # PrimarySteppedDown
        262,  # ExceededTimeLimit
        9001,  # SocketException
        10107,  # NotWritablePrimary
        11600,  # InterruptedAtShutdown
        11602,  # InterruptedDueToReplStateChange
        13435,  # NotPrimaryNoSecondaryOk
        13436,  # NotPrimaryOrSecondary
        16500,  # RequestRateTooLarge
    }
)
#: Codes that refuse the document itself: it will be refused again, whoever sends it.
MONGO_REJECTED_CODES = frozenset(
    {
        2,  # BadValue
        9,  # FailedToParse
        10334,  # BSONObjectTooLarge
        17280,  # KeyTooLong
        52,  # DollarPrefixedFieldName
        55,  # InvalidDBRef
        56,  # EmptyFieldName
        57,  # DottedFieldName
        121,  # DocumentValidationFailure
    }
)
_MONGO_RETRY_LABELS = ("RetryableWriteError", "TransientTransactionError", "NetworkError")


def is_duplicate_key(exc: Exception) -> bool:
    """A duplicate key: the write was already done (idempotent), not a failure.

    True for ``DuplicateKeyError`` and for a ``BulkWriteError`` whose every error is one.
    """
    if isinstance(exc, mongo_errors.DuplicateKeyError):
        return True
    if isinstance(exc, mongo_errors.BulkWriteError):
        details: Mapping[str, Any] = exc.details or {}
        write_errors: list[dict[str, Any]] = list(details.get("writeErrors") or [])
        concern_errors = details.get("writeConcernErrors") or []
        return bool(write_errors) and not concern_errors and _all_duplicates(write_errors)
    return False


def _all_duplicates(write_errors: Iterable[dict[str, Any]]) -> bool:
    return all(error.get("code") == MONGO_DUPLICATE_KEY for error in write_errors)


def classify_mongo(exc: Exception, *, what: str = "mongodb") -> Exception:
    """Map an exception of PyMongo onto the project's tree.

    A duplicate key (see :func:`is_duplicate_key`) is returned unchanged: it is the idempotent
    case, which the caller handles before calling this. A write-concern error (``WTimeoutError``
    included) leaves the write's durability unknown, and every write of ours is idempotent, so
    it is retried. Authentication (18) and authorization (13) failures are ``AccessProblem``; a
    document the server refuses (too large, invalid field names, validation) is
    ``OutputRejected`` with ``storage_rejected``.
    """
    if is_duplicate_key(exc):
        return exc
    for kinds, convert in MONGO_TABLE:
        if isinstance(exc, kinds):
            return convert(exc, what)
    if isinstance(exc, mongo_errors.PyMongoError) and _retry_labelled(exc):
        return _mongo_down(f"{what}: {exc}")
    return exc


def _retry_labelled(exc: mongo_errors.PyMongoError) -> bool:
    return any(exc.has_error_label(label) for label in _MONGO_RETRY_LABELS)


def _mongo_down(message: str) -> Exception:
    return DependencyUnavailable("mongodb", message)


def _by_code(exc: Exception, what: str) -> Exception:
    if isinstance(exc, mongo_errors.BulkWriteError):
        return _classify_bulk(exc, what)
    if isinstance(exc, mongo_errors.OperationFailure):
        return _classify_code(exc, exc.code, what)
    return exc


#: The MongoDB table, first match wins (``is_duplicate_key`` is checked before it).
MONGO_TABLE: tuple[
    tuple[tuple[type[Exception], ...], Callable[[Exception, str], Exception]], ...
] = (
    (
        (mongo_errors.ConnectionFailure,),  # AutoReconnect, NetworkTimeout, server selection
        lambda exc, what: _mongo_down(f"{what}: {type(exc).__name__}: {exc}"),
    ),
    (
        # Durability unknown; every write of ours is idempotent, so it is simply redone.
        (mongo_errors.WriteConcernError,),  # WTimeoutError included
        lambda exc, what: _mongo_down(f"{what}: write concern not met: {exc}"),
    ),
    (
        (InvalidDocument,),  # DocumentTooLarge included
        lambda exc, what: OutputRejected(f"{what}: {exc}", code=ErrorCode.STORAGE_REJECTED),
    ),
    (
        (mongo_errors.ConfigurationError,),  # InvalidURI included
        lambda exc, what: ConfigurationError(f"{what}: {exc}"),
    ),
    ((mongo_errors.OperationFailure,), _by_code),  # BulkWriteError, ExecutionTimeout included
)


def _classify_bulk(exc: mongo_errors.BulkWriteError, what: str) -> Exception:
    details: Mapping[str, Any] = exc.details or {}
    if details.get("writeConcernErrors"):
        return DependencyUnavailable("mongodb", f"{what}: write concern not met: {exc}")
    for error in details.get("writeErrors") or []:
        if error.get("code") != MONGO_DUPLICATE_KEY:
            return _classify_code(exc, error.get("code"), what)
    return exc


def _classify_code(exc: mongo_errors.OperationFailure, code: int | None, what: str) -> Exception:
    if code in MONGO_ACCESS_CODES:
        return AccessProblem("mongodb", f"{what}: {exc} (code {code})")
    if code in MONGO_TRANSIENT_CODES or _retry_labelled(exc):
        return DependencyUnavailable("mongodb", f"{what}: {exc} (code {code})")
    if code in MONGO_REJECTED_CODES:
        return OutputRejected(f"{what}: {exc} (code {code})", code=ErrorCode.STORAGE_REJECTED)
    return exc
