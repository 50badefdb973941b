"""The one retry policy: every error of the tree, and the libraries' through the error tables,
decided for every kind of work; HTTP outcomes of a webhook; the attempts and the backoff."""

from __future__ import annotations

import errno
import math
from typing import NamedTuple

import pytest
from aiokafka import errors as kafka_errors
from botocore.exceptions import ClientError, EndpointConnectionError
from bson.errors import InvalidDocument
from pymongo import errors as mongo_errors

from video_runner.adapters.error_classes import (
    classify_escaped,
    classify_kafka,
    classify_mongo,
    classify_s3,
)
from video_runner.domain.retry_policy import (
    RULES,
    Decision,
    ErrorKind,
    RetryPolicy,
    Work,
    dependency_of,
)
from video_runner.errors import (
    AccessProblem,
    ConfigurationError,
    DependencyUnavailable,
    InvalidMessage,
    InvalidVideo,
    OutputRejected,
    PermanentError,
    RetriableError,
    SourceMissing,
    VideoRunnerError,
)

POLICY = RetryPolicy(initial_s=0.5, max_s=30.0, max_attempts=3)

WAIT, RETRY, DEAD, GIVE_UP = (
    Decision.WAIT_OUT,
    Decision.RETRY,
    Decision.DEAD_LETTER,
    Decision.GIVE_UP,
)


class Expected(NamedTuple):
    """The decision of each kind of work on the first failure."""

    message: Decision
    dead_letter: Decision
    start_up: Decision
    periodic_job: Decision
    webhook: Decision


#: Written out, not derived from the policy's table: these are what the loops must do.
DOWN = Expected(message=WAIT, dead_letter=WAIT, start_up=WAIT, periodic_job=WAIT, webhook=RETRY)
CONFIG = Expected(
    message=WAIT, dead_letter=WAIT, start_up=GIVE_UP, periodic_job=WAIT, webhook=RETRY
)
PERMANENT = Expected(
    message=DEAD, dead_letter=WAIT, start_up=GIVE_UP, periodic_job=RETRY, webhook=DEAD
)
UNEXPECTED = Expected(
    message=RETRY, dead_letter=WAIT, start_up=GIVE_UP, periodic_job=RETRY, webhook=RETRY
)


def _reply(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "GetObject",
    )


#: One row per error class of the tree, then representatives of each library through its table
#: (or through ``classify_escaped``, as a loop meets one that escaped an adapter).
ROWS: list[tuple[str, BaseException, Expected]] = [
    ("VideoRunnerError", VideoRunnerError("the bare root"), UNEXPECTED),
    ("ConfigurationError", ConfigurationError("bad bucket name"), CONFIG),
    ("AccessProblem", AccessProblem("s3", "credentials refused"), CONFIG),
    ("RetriableError", RetriableError("try later"), DOWN),
    ("DependencyUnavailable", DependencyUnavailable("mongodb", "no primary"), DOWN),
    ("PermanentError", PermanentError("refused"), PERMANENT),
    ("InvalidMessage", InvalidMessage("not JSON"), PERMANENT),
    ("SourceMissing", SourceMissing("no such object"), PERMANENT),
    ("InvalidVideo", InvalidVideo("no video stream"), PERMANENT),
    ("OutputRejected", OutputRejected("document too large"), PERMANENT),
    ("s3 SlowDown 503", classify_s3(_reply("SlowDown", 503)), DOWN),
    ("s3 InvalidAccessKeyId", classify_s3(_reply("InvalidAccessKeyId", 403)), CONFIG),
    ("s3 NoSuchKey of an event", classify_s3(_reply("NoSuchKey", 404), source=True), PERMANENT),
    ("s3 NoSuchKey of ours, escaped", classify_escaped(_reply("NoSuchKey", 404)), CONFIG),
    (
        "s3 endpoint unreachable, escaped",
        classify_escaped(EndpointConnectionError(endpoint_url="http://s3")),
        DOWN,
    ),
    ("kafka request timed out", classify_kafka(kafka_errors.RequestTimedOutError()), DOWN),
    ("kafka connection, escaped", classify_escaped(kafka_errors.KafkaConnectionError()), DOWN),
    (
        "kafka topic authorization",
        classify_kafka(kafka_errors.TopicAuthorizationFailedError()),
        CONFIG,
    ),
    ("kafka message too large", classify_kafka(kafka_errors.MessageSizeTooLargeError()), PERMANENT),
    ("mongodb AutoReconnect", classify_mongo(mongo_errors.AutoReconnect("gone")), DOWN),
    (
        "mongodb unauthorized (13)",
        classify_mongo(mongo_errors.OperationFailure("not allowed", code=13)),
        CONFIG,
    ),
    ("mongodb document too large", classify_mongo(mongo_errors.DocumentTooLarge("big")), PERMANENT),
    ("mongodb invalid document, escaped", classify_escaped(InvalidDocument("$key")), PERMANENT),
    (
        "mongodb duplicate key, escaped",
        classify_escaped(mongo_errors.DuplicateKeyError("dup", code=11000)),
        UNEXPECTED,
    ),
    ("OSError disk full", classify_escaped(OSError(errno.ENOSPC, "No space left")), DOWN),
    ("OSError too many open files", classify_escaped(OSError(errno.EMFILE, "Too many")), DOWN),
    ("MemoryError", classify_escaped(MemoryError()), DOWN),
    ("PermissionError", classify_escaped(PermissionError(errno.EACCES, "denied")), UNEXPECTED),
    ("FileNotFoundError", classify_escaped(FileNotFoundError(errno.ENOENT, "gone")), UNEXPECTED),
    ("ConnectionRefusedError", classify_escaped(ConnectionRefusedError()), UNEXPECTED),
    ("KeyError", classify_escaped(KeyError("boom")), UNEXPECTED),
]


@pytest.mark.parametrize("work", list(Work), ids=str)
@pytest.mark.parametrize(("error", "expected"), [row[1:] for row in ROWS], ids=[r[0] for r in ROWS])
def test_each_error_is_decided_for_each_kind_of_work(error, expected, work):
    """The first failure of each error class, classified through the tables, gets the decision
    its kind of work must take."""
    assert POLICY.decide(error, work=work, failures=1) is getattr(expected, work.value)


def test_the_table_decides_every_kind_of_error_for_every_kind_of_work():
    """No cell is missing: a new kind of work or of error must be decided on purpose."""
    assert {work: set(column) for work, column in RULES.items()} == {
        work: set(ErrorKind) for work in Work
    }


@pytest.mark.parametrize("work", [Work.MESSAGE, Work.WEBHOOK], ids=str)
def test_a_retry_gives_up_once_its_attempts_are_used_up(work):
    """``max_attempts`` tries in all: the failures before the last are retried, the last one
    gives up."""
    error = KeyError("boom") if work is Work.MESSAGE else DependencyUnavailable("webhook", "503")
    decisions = [POLICY.decide(error, work=work, failures=n) for n in (1, 2, 3, 4)]
    assert decisions == [RETRY, RETRY, GIVE_UP, GIVE_UP]


@pytest.mark.parametrize("work", [Work.MESSAGE, Work.DEAD_LETTER, Work.START_UP], ids=str)
def test_a_dependency_that_is_down_is_waited_out_however_long(work):
    """Ten thousand failures of a dependency do not make a consumer or a start-up give up."""
    error = DependencyUnavailable("kafka", "no broker")
    assert POLICY.decide(error, work=work, failures=10_000) is WAIT


def test_a_periodic_job_never_gives_up():
    """Its retry is its next run: a job that crashed a thousand times in a row still runs."""
    assert POLICY.decide(KeyError("boom"), work=Work.PERIODIC_JOB, failures=1000) is RETRY


def test_waiting_a_dependency_out_uses_up_no_attempt():
    """After a long outage the next unexpected error still gets all its tries."""
    tries = POLICY.tries(Work.MESSAGE)
    for _ in range(100):
        assert tries.failed(DependencyUnavailable("s3", "down")) is WAIT
    assert [tries.failed(KeyError("boom")) for _ in range(3)] == [RETRY, RETRY, GIVE_UP]
    assert (tries.waits, tries.retries) == (100, 3)


def test_a_permanent_error_is_dead_lettered_at_once_whatever_came_before():
    """A permanent error is never tried again, even on a message's first try or its last."""
    for failures in (1, 3, 50):
        assert POLICY.decide(InvalidVideo("x"), work=Work.MESSAGE, failures=failures) is DEAD


@pytest.mark.parametrize("failures", range(1, 12))
def test_the_backoff_doubles_from_the_initial_delay_up_to_the_maximum_with_jitter(failures):
    """After the n-th failure in a row the delay is within half and all of
    ``min(max, initial * 2**(n-1))``."""
    ceiling = min(30.0, 0.5 * 2 ** (failures - 1))
    delays = [POLICY.delay(failures) for _ in range(50)]
    assert all(ceiling / 2 <= delay <= ceiling for delay in delays)


def test_no_backoff_exceeds_the_maximum_after_any_number_of_failures():
    """Days of failures in a row: the delay is a finite number under its cap."""
    for failures in (100, 10_000, 1_000_000):
        delay = POLICY.delay(failures)
        assert math.isfinite(delay)
        assert 15.0 <= delay <= 30.0


def test_a_wait_backs_off_by_the_waits_and_a_retry_by_the_retries():
    """Six wait-outs grow the backoff to 16 s of initial 0.5; the first retry after them starts
    again from the initial delay."""
    tries = RetryPolicy(initial_s=0.5, max_s=1000.0, max_attempts=3).tries(Work.MESSAGE)
    for _ in range(6):
        tries.failed(DependencyUnavailable("mongodb", "election"))
    assert 8.0 <= tries.delay() <= 16.0
    tries.failed(KeyError("boom"))
    assert 0.25 <= tries.delay() <= 0.5


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, None),
        (201, None),
        (204, None),
        (None, RETRY),  # no answer: refused connection, timeout
        (500, RETRY),
        (502, RETRY),
        (503, RETRY),
        (504, RETRY),
        (408, RETRY),
        (429, RETRY),
        (400, DEAD),
        (401, DEAD),
        (403, DEAD),
        (404, DEAD),
        (410, DEAD),
        (422, DEAD),
        (301, DEAD),  # redirects are not followed: the allowlisted host is the only one called
        (302, DEAD),
    ],
    ids=str,
)
def test_each_http_outcome_of_a_webhook_is_decided(status, expected):
    """A 2xx is delivered (nothing to decide); no answer, a 5xx, 408 or 429 is tried again; any
    other status refuses the notice for good."""
    assert POLICY.decide_http(status, attempts=1) is expected


@pytest.mark.parametrize(
    ("status", "expected"), [(None, GIVE_UP), (503, GIVE_UP), (429, GIVE_UP), (404, DEAD)], ids=str
)
def test_a_webhook_on_its_last_attempt_gives_up_unless_it_was_refused(status, expected):
    """On the last attempt a failure that could pass gives up; a refusal stays a refusal."""
    assert POLICY.decide_http(status, attempts=3) is expected


def test_a_delivered_webhook_is_delivered_on_any_attempt():
    """A 2xx is never a failure, not even past the attempts."""
    assert POLICY.decide_http(204, attempts=3) is None


@pytest.mark.parametrize(
    ("error", "dependency"),
    [
        (DependencyUnavailable("s3", "down"), "s3"),
        (AccessProblem("kafka", "SASL refused"), "kafka"),
        (ConfigurationError("a bucket name of our settings is invalid"), "settings"),
        (classify_escaped(OSError(errno.ENOSPC, "No space left")), "disk"),
        (classify_escaped(MemoryError()), "memory"),
        (KeyError("boom"), None),
    ],
    ids=["s3", "kafka", "settings", "disk", "memory", "none"],
)
def test_a_wait_names_the_dependency_it_waits_for(error, dependency):
    """What the log and readiness name: the error's dependency, ``settings`` for a
    configuration error that names none, nothing for an error that is not a wait."""
    assert dependency_of(error) == dependency
