"""MongoDB failures: PyMongo's exceptions and server codes (duplicate, access, transient,
rejected document)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from bson.errors import InvalidDocument
from pymongo import errors as mongo_errors

from video_runner.errors import (
    AccessProblem,
    ConfigurationError,
    DependencyUnavailable,
    ErrorCode,
    OutputRejected,
)

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
