"""``outbox_events``: a video to process, read into a normalised ``VideoEvent``."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from video_runner.contracts.json_input import DEFAULT_MAX_MESSAGE_BYTES, decode_json, json_object
from video_runner.contracts.names import check_bucket, checked_id, checked_key, event_id_in
from video_runner.contracts.options import EventOptions
from video_runner.contracts.validation import validated
from video_runner.errors import ErrorCode, InvalidMessage

_SHOWN = 480


class OutboxPayload(BaseModel):
    """Where the video is."""

    model_config = ConfigDict(frozen=True, strict=True)

    bucket: str | None = Field(default=None, min_length=3, max_length=63)
    object: str = Field(min_length=1, max_length=1024)
    media_type: str | None = None
    options: Any = Field(
        default=None,
        description="per-video options, event_options.schema.json: any value passes here, the"
        " model then refuses a bad one as bad_options",
    )


class OutboxEvent(BaseModel):
    """outbox_events message: a video to process."""

    model_config = ConfigDict(
        frozen=True, strict=True, populate_by_name=True, title="outbox_events message"
    )

    event_id: str | None = None
    row_id: str | None = Field(default=None, alias="_id")
    payload: OutboxPayload


@dataclass(frozen=True, slots=True)
class VideoEvent:
    """An ``outbox_events`` message, normalised."""

    event_id: str
    bucket: str
    object_key: str
    media_type: str
    options: EventOptions = field(default_factory=EventOptions)


class OptionsRejected(InvalidMessage):
    """The event is well formed but its ``payload.options`` are not: ``bad_options``.

    Carries the event (with default options), so the runner can record it as ``failed``.
    """

    def __init__(self, message: str, event: VideoEvent) -> None:
        super().__init__(message, code=ErrorCode.BAD_OPTIONS, event_id=event.event_id)
        self.event = event


def parse_video_event(
    raw: bytes | None,
    default_bucket: str,
    *,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    allowed_buckets: frozenset[str] | None = None,
) -> VideoEvent:
    """Read an ``outbox_events`` message: ``event_id``, else ``_id``, else the object's stem.

    With ``allowed_buckets`` (``ALLOWED_SOURCE_BUCKETS``), an event naming any other bucket is
    refused: a malformed name as ``bad_id``, a well-formed one as ``bucket_not_allowed``. The
    ``default_bucket`` is always allowed: an event without a bucket reads from it anyway.
    ``None`` checks nothing.
    """
    document = json_object(decode_json(raw, max_bytes=max_bytes), "outbox_event")
    message = validated(document, OutboxEvent, "outbox_event")
    payload = message.payload
    try:
        key = checked_key(payload.object)
        event_id = message.event_id or message.row_id or PurePosixPath(key).stem
        bucket = payload.bucket or default_bucket
        if allowed_buckets is not None and bucket != default_bucket:
            check_bucket(bucket, allowed_buckets)
        event = VideoEvent(
            event_id=checked_id(event_id, "event id"),
            bucket=bucket,
            object_key=key,
            media_type=payload.media_type or "video",
        )
    except InvalidMessage as exc:
        exc.event_id = exc.event_id or event_id_in(document)
        raise
    if payload.options is None:
        return event
    return replace(event, options=_options(payload.options, event))


def _options(raw: object, event: VideoEvent) -> EventOptions:
    try:
        return EventOptions.model_validate(raw)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'options'}: {error['msg']}"
            for error in exc.errors()
        )
        raise OptionsRejected(f"payload.options: {problems}"[:_SHOWN], event) from exc
