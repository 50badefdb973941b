"""One table of error classes: every row of S3, Kafka and MongoDB maps to one precise outcome."""

from __future__ import annotations

import errno

import pytest
from aiokafka import errors as kafka_errors
from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    ReadTimeoutError,
    ResponseStreamingError,
    SSLError,
)
from bson.errors import InvalidDocument
from pymongo import errors as mongo_errors

from video_runner.adapters.error_classes import (
    classify_kafka,
    classify_mongo,
    classify_s3,
    is_duplicate_key,
    is_s3_plain_denial,
)
from video_runner.adapters.s3 import S3ObjectStore
from video_runner.errors import (
    AccessProblem,
    ConfigurationError,
    DependencyUnavailable,
    ErrorCode,
    InvalidMessage,
    OutputRejected,
    PermanentError,
    SourceMissing,
)


def _reply(code: str, status: int, operation: str = "GetObject") -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
        operation,
    )


def _outcome(error: Exception) -> tuple[type[Exception], ErrorCode | None]:
    """The class and, for a permanent error, the code: what the consumer loop acts on."""
    return type(error), error.code if isinstance(error, PermanentError) else None


UNAVAILABLE = (DependencyUnavailable, None)
ACCESS = (AccessProblem, None)
CONFIG = (ConfigurationError, None)


# --- S3 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "source", "expected"),
    [
        (_reply("SlowDown", 503), True, UNAVAILABLE),
        (_reply("InternalError", 500), False, UNAVAILABLE),
        (_reply("502", 502, "HeadObject"), True, UNAVAILABLE),
        (_reply("RequestTimeout", 400), False, UNAVAILABLE),
        (_reply("TooManyRequests", 429), True, UNAVAILABLE),
        (_reply("OperationAborted", 409), False, UNAVAILABLE),
        (_reply("InvalidAccessKeyId", 403), True, ACCESS),
        (_reply("SignatureDoesNotMatch", 403), False, ACCESS),
        (_reply("ExpiredToken", 400), True, ACCESS),
        (_reply("AccessDenied", 403), False, ACCESS),
        (_reply("403", 403, "HeadObject"), True, ACCESS),
        (_reply("NoSuchKey", 404), True, (SourceMissing, ErrorCode.MISSING_OBJECT)),
        (_reply("404", 404, "HeadObject"), True, (SourceMissing, ErrorCode.MISSING_OBJECT)),
        (_reply("NoSuchBucket", 404), True, ACCESS),
        (_reply("NoSuchBucket", 404, "PutObject"), False, ACCESS),
        (_reply("NoSuchKey", 404), False, ACCESS),
        (_reply("InvalidBucketName", 400), True, (InvalidMessage, ErrorCode.BAD_ID)),
        (_reply("InvalidBucketName", 400, "PutObject"), False, CONFIG),
        (_reply("KeyTooLongError", 400), True, (InvalidMessage, ErrorCode.BAD_ID)),
        (
            _reply("KeyTooLongError", 400, "PutObject"),
            False,
            (OutputRejected, ErrorCode.STORAGE_REJECTED),
        ),
        (_reply("InvalidObjectState", 403), True, (SourceMissing, ErrorCode.SOURCE_UNREADABLE)),
        (_reply("InvalidObjectState", 403, "PutObject"), False, ACCESS),
        (_reply("InvalidRange", 416), True, (SourceMissing, ErrorCode.SOURCE_UNREADABLE)),
        (_reply("EntityTooLarge", 400, "PutObject"), False, (OutputRejected, "storage_rejected")),
        (_reply("Weird", 302), False, UNAVAILABLE),
    ],
    ids=lambda value: getattr(value, "response", {}).get("Error", {}).get("Code", str(value)),
)
def test_every_s3_reply_maps_to_one_class(reply, source, expected):
    """Throttling and 5xx wait; credentials, denials and missing buckets wait with an alert;
    4xx about the object or name of a message are permanent for it; 4xx on storage of ours
    never blame it."""
    assert _outcome(classify_s3(reply, what="op", source=source)) == expected


def test_a_plain_denial_of_a_source_with_working_credentials_is_permanent():
    """AWS answers 403 for a missing key without s3:ListBucket: once the credentials are seen
    working elsewhere, the refusal is about the object, so the event fails instead of stalling."""
    reply = _reply("403", 403, "HeadObject")
    assert is_s3_plain_denial(reply)
    error = classify_s3(reply, source=True, credentials_valid=True)
    assert _outcome(error) == (SourceMissing, ErrorCode.SOURCE_UNREADABLE)


def test_a_credentials_refusal_stays_an_access_problem_even_with_credentials_seen_working():
    """A signature refused is about the credentials, whatever an earlier probe said."""
    reply = _reply("SignatureDoesNotMatch", 403)
    assert not is_s3_plain_denial(reply)
    assert _outcome(classify_s3(reply, source=True, credentials_valid=True)) == ACCESS


def test_a_denial_on_storage_of_ours_is_never_permanent():
    """Working credentials refused on our own bucket: a permission to fix, not the event's fault."""
    error = classify_s3(_reply("AccessDenied", 403, "PutObject"), credentials_valid=True)
    assert _outcome(error) == ACCESS
    assert isinstance(error, ConfigurationError)
    assert error.dependency == "s3"


@pytest.mark.parametrize(
    ("exc", "source", "expected"),
    [
        (ParamValidationError(report="Invalid bucket name"), True, (InvalidMessage, "bad_id")),
        (ParamValidationError(report="Invalid bucket name"), False, CONFIG),
        (EndpointConnectionError(endpoint_url="http://s3"), True, UNAVAILABLE),
        (ConnectTimeoutError(endpoint_url="http://s3"), False, UNAVAILABLE),
        (ReadTimeoutError(endpoint_url="http://s3"), True, UNAVAILABLE),
        (ResponseStreamingError(error="reset"), True, UNAVAILABLE),
        (NoCredentialsError(), False, ACCESS),
        (SSLError(endpoint_url="https://s3", error="certificate verify failed"), False, ACCESS),
        (NoRegionError(), False, CONFIG),
        (OSError(errno.ENOSPC, "No space left on device"), True, UNAVAILABLE),
    ],
    ids=lambda value: type(value).__name__,
)
def test_every_s3_client_side_failure_maps_to_one_class(exc, source, expected):
    """Names botocore refuses are the message's (or our settings') fault; the network waits;
    missing credentials and TLS trust wait with an alert; a full disk passes."""
    assert _outcome(classify_s3(exc, source=source)) == expected


def _upload_failed(reply: ClientError) -> S3UploadFailedError:
    """What boto3's upload_file raises: the reply survives only as the implicit context."""
    try:
        try:
            raise reply
        except ClientError as inner:
            raise S3UploadFailedError(f"Failed to upload: {inner}")  # noqa: B904 - as boto3 does
    except S3UploadFailedError as wrapped:
        return wrapped


def test_an_upload_failure_is_classified_by_the_reply_it_wraps():
    """A missing results bucket on upload_file is an access problem, as on put_object."""
    wrapped = _upload_failed(_reply("NoSuchBucket", 404, "PutObject"))
    assert _outcome(classify_s3(wrapped, what="upload")) == ACCESS


def test_an_exception_that_is_not_s3s_is_returned_unchanged():
    """A bug stays a bug: the loop's bounded 'unexpected' path handles it, not endless retries."""
    bug = KeyError("ContentLength")
    assert classify_s3(bug) is bug


# --- Kafka ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (kafka_errors.KafkaConnectionError(), UNAVAILABLE),
        (kafka_errors.KafkaTimeoutError(), UNAVAILABLE),
        (kafka_errors.RequestTimedOutError(), UNAVAILABLE),
        (kafka_errors.NotLeaderForPartitionError(), UNAVAILABLE),
        (kafka_errors.LeaderNotAvailableError(), UNAVAILABLE),
        (kafka_errors.NotEnoughReplicasError(), UNAVAILABLE),
        (kafka_errors.UnknownTopicOrPartitionError(), UNAVAILABLE),
        (kafka_errors.NodeNotReadyError(), UNAVAILABLE),
        (kafka_errors.RebalanceInProgressError(), UNAVAILABLE),
        (kafka_errors.QuotaViolationError(), UNAVAILABLE),
        (TimeoutError(), UNAVAILABLE),
        (kafka_errors.MessageSizeTooLargeError(), (OutputRejected, ErrorCode.MESSAGE_TOO_LARGE)),
        (kafka_errors.RecordTooLargeError(), (OutputRejected, ErrorCode.MESSAGE_TOO_LARGE)),
        (kafka_errors.TopicAuthorizationFailedError(), ACCESS),
        (kafka_errors.GroupAuthorizationFailedError(), ACCESS),
        (kafka_errors.SaslAuthenticationFailed(), ACCESS),
        (kafka_errors.InvalidTopicError(), CONFIG),
        (kafka_errors.UnsupportedVersionError(), CONFIG),
    ],
    ids=lambda value: type(value).__name__,
)
def test_every_kafka_error_maps_to_one_class(exc, expected):
    """Retriable and transient errors wait; an oversized message is permanent for that message;
    authorization waits with an alert; an invalid topic name is a configuration error."""
    assert _outcome(classify_kafka(exc, what="publish")) == expected


def test_an_unknown_non_retriable_kafka_error_is_returned_unchanged():
    """Not retried forever: it stays unexpected, bounded by the consumer loop."""
    odd = kafka_errors.IllegalStateError("odd")
    assert classify_kafka(odd) is odd


# --- MongoDB ----------------------------------------------------------------------------------


def _failure(code: int, labels: list[str] | None = None) -> mongo_errors.OperationFailure:
    details = {"code": code, "errmsg": f"failed {code}", "errorLabels": labels or []}
    return mongo_errors.OperationFailure(f"failed {code}", code, details)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (mongo_errors.AutoReconnect("primary gone"), UNAVAILABLE),
        (mongo_errors.NetworkTimeout("slow"), UNAVAILABLE),
        (mongo_errors.ServerSelectionTimeoutError("no server"), UNAVAILABLE),
        (mongo_errors.ExecutionTimeout("maxTimeMS", 50), UNAVAILABLE),
        (mongo_errors.WTimeoutError("wtimeout", 64, {"code": 64}), UNAVAILABLE),
        (mongo_errors.WriteConcernError("w: majority", 100, {"code": 100}), UNAVAILABLE),
        (_failure(189), UNAVAILABLE),
        (_failure(10107), UNAVAILABLE),
        (_failure(16500), UNAVAILABLE),
        (_failure(9999, ["RetryableWriteError"]), UNAVAILABLE),
        (_failure(18), ACCESS),
        (_failure(13), ACCESS),
        (_failure(10334), (OutputRejected, ErrorCode.STORAGE_REJECTED)),
        (_failure(17280), (OutputRejected, ErrorCode.STORAGE_REJECTED)),
        (mongo_errors.DocumentTooLarge("16 MB"), (OutputRejected, ErrorCode.STORAGE_REJECTED)),
        (InvalidDocument("key '$x' must not start with '$'"), (OutputRejected, "storage_rejected")),
        (mongo_errors.InvalidURI("bad uri"), CONFIG),
    ],
    ids=lambda value: f"{type(value).__name__}-{getattr(value, 'code', '')}",
)
def test_every_mongodb_error_maps_to_one_class(exc, expected):
    """Network, elections, time limits and write-concern errors wait (writes are idempotent);
    auth (18) and authorization (13) wait with an alert; a refused document is permanent."""
    assert _outcome(classify_mongo(exc, what="save")) == expected


def test_a_duplicate_key_is_returned_unchanged_as_the_idempotent_case():
    """The caller treats a duplicate as 'already done'; the table never turns it into a failure."""
    duplicate = mongo_errors.DuplicateKeyError("E11000", 11000, {"code": 11000})
    assert is_duplicate_key(duplicate)
    assert classify_mongo(duplicate) is duplicate


def test_a_bulk_write_of_duplicates_only_is_a_duplicate():
    """Re-inserting frame records already there: every write error is 11000."""
    bulk = mongo_errors.BulkWriteError(
        {"writeErrors": [{"code": 11000}, {"code": 11000}], "writeConcernErrors": []}
    )
    assert is_duplicate_key(bulk)
    assert classify_mongo(bulk) is bulk


def test_a_bulk_write_with_a_write_concern_error_is_retried():
    """Durability unknown: the idempotent bulk is redone."""
    bulk = mongo_errors.BulkWriteError(
        {"writeErrors": [{"code": 11000}], "writeConcernErrors": [{"code": 64}]}
    )
    assert not is_duplicate_key(bulk)
    assert _outcome(classify_mongo(bulk)) == UNAVAILABLE


def test_a_bulk_write_is_classified_by_its_first_error_that_is_not_a_duplicate():
    """A document too large among duplicates: the bulk is refused for good."""
    bulk = mongo_errors.BulkWriteError(
        {"writeErrors": [{"code": 11000}, {"code": 10334}], "writeConcernErrors": []}
    )
    assert _outcome(classify_mongo(bulk)) == (OutputRejected, ErrorCode.STORAGE_REJECTED)


def test_an_unknown_operation_failure_is_returned_unchanged():
    """FerretDB's 'not implemented' and the like: unexpected, bounded, never retried forever."""
    odd = _failure(238)
    assert classify_mongo(odd) is odd


# --- the S3 adapter's use of the table ----------------------------------------------------------


class _DeniedClient:
    """A boto3 client stub: every HEAD answers a bare 403; listing buckets answers ``listing``."""

    def __init__(self, listing: ClientError | None) -> None:
        self._listing = listing

    def head_object(self, **_kwargs: object) -> dict[str, object]:
        raise _reply("403", 403, "HeadObject")

    def list_buckets(self) -> dict[str, object]:
        if self._listing is not None:
            raise self._listing
        return {"Buckets": []}


@pytest.mark.parametrize(
    "listing", [None, _reply("AccessDenied", 403, "ListBuckets")], ids=["listed", "not-allowed"]
)
async def test_a_bare_403_on_a_source_with_working_credentials_fails_the_event(tmp_path, listing):
    """The adapter checks the credentials on another request: they authenticate, so the 403 is
    about the object (on AWS, a missing key without s3:ListBucket): source_unreadable."""
    store = S3ObjectStore(_DeniedClient(listing))
    with pytest.raises(SourceMissing) as caught:
        await store.download_to_file("videos", "input/a.mp4", tmp_path / "a.video")
    assert caught.value.code == ErrorCode.SOURCE_UNREADABLE


async def test_a_bare_403_with_refused_credentials_is_waited_out(tmp_path):
    """The credentials themselves are refused: an access problem, never a failed event."""
    store = S3ObjectStore(_DeniedClient(_reply("InvalidAccessKeyId", 403, "ListBuckets")))
    with pytest.raises(AccessProblem):
        await store.download_to_file("videos", "input/a.mp4", tmp_path / "a.video")
