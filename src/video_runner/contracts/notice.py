"""Completion notices (``prediction_events``, key = event_id): one message per terminal transition.

A notice says that an event ended: ``ready`` (where its final JSON is, how many frames, how many
detections per class, how long each stage took, the client's tag) or ``failed`` (the error code
and reason, the tag). ``notice_id`` (``{event_id}/ready`` or ``{event_id}/failed``) is stable:
the same notice published twice carries the same id, so a consumer can dedupe on it.
``prediction_notice.schema.json`` beside this module is this model's JSON Schema (a unit test
keeps the two equal). The same JSON is the body of the optional webhook (docs/contracts.md).

The notice is built from the event's document and the fields of the move, at the moment the move
is claimed (``notice_for``), and written in the claim itself: it exists exactly when the move was
won (docs/decisions/0008-completion-notices.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from video_runner.domain.status import Status

NOTICE_VERSION: Literal[1] = 1

EventId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,128}$")]


class NoticeError(BaseModel):
    """Why a video failed: a stable error code (docs/contracts.md) and a human reason."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str = Field(min_length=1, max_length=64)
    message: str = Field(max_length=1000)


class Durations(BaseModel):
    """Milliseconds between the document's timestamps; a stage that was not timed is absent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: From acceptance (``created_at``) to the end (``ready_at`` or ``failed_at``).
    total_ms: int | None = Field(default=None, ge=0)
    #: Decoding, uploading and publishing every frame task (``created_at`` -> ``extracted_at``).
    extraction_ms: int | None = Field(default=None, ge=0)
    #: Waiting for every frame's result (``extracted_at`` -> ``predictable_at``).
    inference_ms: int | None = Field(default=None, ge=0)
    #: Writing the final JSON (``predictable_at`` -> ``ready_at``).
    output_ms: int | None = Field(default=None, ge=0)


class _Notice(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = NOTICE_VERSION
    notice_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,128}/(ready|failed)$")
    event_id: EventId
    #: When the event reached its terminal state (UTC, ISO 8601).
    at: datetime
    #: The event's ``tag`` option, echoed; null without one.
    tag: str | None = Field(default=None, max_length=256)
    durations: Durations


class ReadyNotice(_Notice):
    """The final JSON is in S3."""

    status: Literal["ready"]
    #: ``s3://{bucket}/detection/{event_id}.json``.
    output_s3: str = Field(pattern=r"^s3://")
    #: Sampled frames in the final JSON, and those whose detector failed.
    frames: int = Field(ge=0)
    failed_frames: int = Field(ge=0)
    #: Detected objects per class over the whole video.
    detections: dict[str, int]


class FailedNotice(_Notice):
    """The video failed for good."""

    status: Literal["failed"]
    error: NoticeError


PredictionNotice = Annotated[ReadyNotice | FailedNotice, Field(discriminator="status")]
_ADAPTER: TypeAdapter[ReadyNotice | FailedNotice] = TypeAdapter(PredictionNotice)


def parse_notice(raw: bytes | str | Mapping[str, Any]) -> ReadyNotice | FailedNotice:
    """A notice read from ``prediction_events`` (or a webhook body); raises on a bad one."""
    if isinstance(raw, Mapping):
        return _ADAPTER.validate_python(raw)
    return _ADAPTER.validate_json(raw)


def notice_id_of(event_id: str, status: Status) -> str:
    return f"{event_id}/{status.value}"


def _ms(start: object, end: object) -> int | None:
    if isinstance(start, datetime) and isinstance(end, datetime):
        return max(int((end - start).total_seconds() * 1000), 0)
    return None


def notice_for(
    document: Mapping[str, Any], target: Status, fields: Mapping[str, Any]
) -> ReadyNotice | FailedNotice | None:
    """The notice of moving ``document`` to ``target`` with ``fields``; None if not terminal."""
    if target not in {Status.READY, Status.FAILED}:
        return None
    merged = {**document, **fields}
    event_id = str(document["_id"])
    tag = (merged.get("options") or {}).get("tag")
    end_field = "ready_at" if target is Status.READY else "failed_at"
    at = merged.get(end_field)
    if not isinstance(at, datetime):  # every caller sets it; a notice must say when regardless
        at = datetime.now(UTC)
    durations = Durations(
        total_ms=_ms(merged.get("created_at"), at),
        extraction_ms=_ms(merged.get("created_at"), merged.get("extracted_at")),
        inference_ms=_ms(merged.get("extracted_at"), merged.get("predictable_at")),
        output_ms=_ms(merged.get("predictable_at"), at) if target is Status.READY else None,
    )
    common: dict[str, Any] = {
        "notice_id": notice_id_of(event_id, target),
        "event_id": event_id,
        "at": at,
        "tag": tag,
        "durations": durations,
    }
    if target is Status.READY:
        return ReadyNotice(
            status="ready",
            output_s3=str(merged["output_s3"]),
            frames=int(merged.get("total_frames") or 0),
            failed_frames=int(merged.get("failed_frames") or 0),
            detections=dict(merged.get("detections") or {}),
            **common,
        )
    error = merged.get("error") or {}
    return FailedNotice(
        status="failed",
        error=NoticeError(
            code=str(error.get("code") or "internal"),
            message=str(error.get("message") or "")[:1000],
        ),
        **common,
    )


def notice_json(notice: ReadyNotice | FailedNotice) -> dict[str, Any]:
    """The notice as the JSON object published and posted (``at`` as ISO 8601 text)."""
    return notice.model_dump(mode="json")


def schema_document() -> dict[str, Any]:
    """The notice's JSON Schema, as ``prediction_notice.schema.json`` holds it."""
    schema = _ADAPTER.json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "video-runner/prediction_notice",
        "title": "PredictionNotice",
        **schema,
    }
