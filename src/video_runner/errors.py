"""The exception tree of video-runner, and which errors are worth retrying.

::

    VideoRunnerError                    root: catch this to catch everything of ours
    ├── ConfigurationError              settings are wrong (bad secret, bad URL); fix and restart
    ├── RetriableError                  the same work may succeed later: back off, do not commit
    │   └── DependencyUnavailable       Kafka, S3 or MongoDB did not answer (``.dependency``)
    └── PermanentError                  the same input will always fail: record, dead-letter, commit
        ├── InvalidMessage              bad JSON, schema violation, or an id outside the allowlist
        ├── SourceMissing               the video object is not in the bucket
        └── InvalidVideo                not a video, no video stream, corrupt, over a limit

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


class VideoRunnerError(Exception):
    """Root of every error video-runner raises on purpose."""


class ConfigurationError(VideoRunnerError):
    """The settings are wrong; retrying will not help, a restart with new settings will."""


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
    """A message is not JSON, violates its schema, or carries an id outside the allowlist."""

    code = ErrorCode.SCHEMA


class SourceMissing(PermanentError):
    """The object named by an event is not in the bucket."""

    code = ErrorCode.MISSING_OBJECT


class InvalidVideo(PermanentError):
    """The file is not a decodable video within the configured limits."""

    code = ErrorCode.NOT_A_VIDEO
