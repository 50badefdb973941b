"""The exception tree of video-runner, and which errors are worth retrying.

::

    VideoRunnerError                    root: catch this to catch everything of ours
    ├── ConfigurationError              settings are wrong (bad secret, bad URL, bad bucket name)
    │   └── AccessProblem               a dependency answers but refuses us (``.dependency``):
    │                                   credentials, permissions, a bucket or topic of ours missing
    ├── MergeAbandoned                  not a failure: a merge started before ``predictable``
    │                                   stops, its event can no longer become ``ready``
    ├── RetriableError                  the same work may succeed later: back off, do not commit
    │   └── DependencyUnavailable       Kafka, S3 or MongoDB did not answer, throttled us or
    │                                   answered 5xx (``.dependency``)
    └── PermanentError                  the same input will always fail: record, dead-letter, commit
        ├── InvalidMessage              not UTF-8 JSON, too deep, too large, schema violation,
        │                               an id or a bucket name outside the allowlist (or a
        │                               bucket outside ALLOWED_SOURCE_BUCKETS)
        ├── SourceMissing               the video object is not in the bucket, or S3 refuses it to
        │                               credentials that work (``source_unreadable``)
        ├── InvalidVideo                not a video, no video stream, corrupt, over a limit
        └── OutputRejected              a dependency refuses, for good, what we write for this
                                        event: a message over the broker's limit, a document or an
                                        object name the server will never take

A ``ConfigurationError`` is never the event's fault, so it never fails an event: at start-up the
process logs it and exits 2 (a clear error, never a hang); mid-run the consumer loops retry it
with backoff exactly like a ``RetriableError`` (nothing is committed, nothing dead-lettered), so
no event is lost while an operator fixes the secret, the permission or the bucket; readiness and
the warning log name the dependency, which is what the alert keys on.

``video_runner.adapters.error_classes`` is the one table that maps the exceptions of botocore,
aiokafka and PyMongo onto this tree (and, for what escaped an adapter, the operating system's:
a full disk or no memory is a ``DependencyUnavailable``); docs/operations.md ("Error classes")
lists what an operator sees for each row.

One retry policy says what is retried: ``video_runner.domain.retry_policy`` decides, from the
class of an error in this tree and the kind of work that failed, whether to wait out, retry,
dead-letter or give up, and how long to back off (``RETRY_*`` settings, ``WEBHOOK_*`` for
webhooks). A consumer waits out a ``RetriableError`` and a ``ConfigurationError`` without
limit, dead-letters a ``PermanentError`` at once (a batch is then handled one record at a time)
and tries anything else ``RETRY_MAX_ATTEMPTS`` times before dead-lettering it as ``internal``; a
failing dead-letter is waited out, whatever the error. A start-up step waits out a
``RetriableError`` only: an ``OSError`` the tables do not know (a work directory we may not
write) is raised, not retried as a dependency that is down. A periodic job runs again at its
interval whatever the error. A webhook retries no answer, 5xx, 408 and 429 up to
``WEBHOOK_MAX_ATTEMPTS``, and any other non-2xx is final.

Every ``PermanentError`` carries a stable ``code`` (see :class:`ErrorCode`), written into the
prediction document (``error.code``) and into the dead-letter message headers; ``str(error)`` is
the human message written next to it.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Stable, documented codes of permanent failures (docs/contracts.md)."""

    BAD_JSON = "bad_json"
    SCHEMA = "schema"
    BAD_ID = "bad_id"
    MISSING_OBJECT = "missing_object"
    EMPTY_FILE = "empty_file"
    NOT_A_VIDEO = "not_a_video"
    NO_VIDEO_STREAM = "no_video_stream"
    CORRUPT = "corrupt"
    FRAME_TOO_LARGE = "frame_too_large"
    TOO_LONG = "too_long"
    FILE_TOO_LARGE = "file_too_large"
    NO_FRAMES = "no_frames"
    INFERENCE_TIMEOUT = "inference_timeout"
    INFERENCE_FAILED = "inference_failed"
    INTERNAL = "internal"
    #: JSON nested deeper than the parser accepts.
    TOO_DEEP = "too_deep"
    #: A message over ``MAX_MESSAGE_BYTES`` read, or over the broker's limit written.
    MESSAGE_TOO_LARGE = "message_too_large"
    #: An inference result with more objects than ``MAX_OBJECTS_PER_FRAME``.
    TOO_MANY_OBJECTS = "too_many_objects"
    #: More sampled frames than ``MAX_SAMPLED_FRAMES``.
    TOO_MANY_FRAMES = "too_many_frames"
    #: Processing options of an event that are out of range.
    BAD_OPTIONS = "bad_options"
    #: S3 refuses the source object to credentials that work (a policy, an archived object).
    SOURCE_UNREADABLE = "source_unreadable"
    #: S3 or MongoDB refuses, for good, an object or a document written for this event.
    STORAGE_REJECTED = "storage_rejected"
    #: An event names a source bucket outside ``ALLOWED_SOURCE_BUCKETS``.
    BUCKET_NOT_ALLOWED = "bucket_not_allowed"
    #: A re-run names an event the runner does not know.
    UNKNOWN_EVENT = "unknown_event"
    #: A re-run names an event that is not ``ready`` (its frames and result are not final).
    NOT_READY = "not_ready"
    #: A re-run of an event whose frames retention deleted (``FRAMES_RETENTION_S``).
    FRAMES_EXPIRED = "frames_expired"
    #: A task asks for a detector this inference worker does not serve (``DETECTORS_SERVED``).
    DETECTOR_UNAVAILABLE = "detector_unavailable"


class VideoRunnerError(Exception):
    """Root of every error video-runner raises on purpose."""


class ConfigurationError(VideoRunnerError):
    """The settings are wrong: fatal at start-up, waited out (retried) by consumers mid-run."""


class AccessProblem(ConfigurationError):
    """A dependency answers but refuses us: an operator must act; consumers wait it out."""

    def __init__(self, dependency: str, message: str) -> None:
        super().__init__(f"{dependency} refused access: {message}")
        self.dependency = dependency


class MergeAbandoned(VideoRunnerError):
    """A merge started early stops: its event failed or is gone (services/early_merges.py)."""


class RetriableError(VideoRunnerError):
    """The same work may succeed later: back off and retry, and commit nothing meanwhile."""


class DependencyUnavailable(RetriableError):
    """A server we depend on did not answer in time or refused for a transient reason."""

    def __init__(self, dependency: str, message: str) -> None:
        super().__init__(f"{dependency} unavailable: {message}")
        self.dependency = dependency


class PermanentError(VideoRunnerError):
    """The same input will always fail: record the reason, dead-letter the message, move on."""

    code: ErrorCode = ErrorCode.SCHEMA

    def __init__(self, message: str, *, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class InvalidMessage(PermanentError):
    """A message is not JSON, violates its schema, or carries an id outside the allowlist.

    ``event_id`` is the message's event id when the parser could read a valid one before it
    gave up, so the dead-letter path records the failure without parsing the bytes again.
    """

    code = ErrorCode.SCHEMA

    def __init__(
        self, message: str, *, code: ErrorCode | None = None, event_id: str | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.event_id = event_id


class SourceMissing(PermanentError):
    """The object named by an event is not in the bucket (or is refused: ``source_unreadable``)."""

    code = ErrorCode.MISSING_OBJECT


class InvalidVideo(PermanentError):
    """The file is not a decodable video within the configured limits."""

    code = ErrorCode.NOT_A_VIDEO


class OutputRejected(PermanentError):
    """A dependency refuses, for good, what we write for this event."""

    code = ErrorCode.STORAGE_REJECTED


def most_telling(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error of a task group that decides what happens to the work: permanent beats
    retriable beats the rest (a permanent one fails the event; retrying cannot fix it)."""
    errors = _leaves(group)
    for kind in (PermanentError, RetriableError):
        for error in errors:
            if isinstance(error, kind):
                return error
    return errors[0]


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    leaves: list[BaseException] = []
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            leaves.extend(_leaves(error))
        else:
            leaves.append(error)
    return leaves
