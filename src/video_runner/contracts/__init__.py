"""The messages on every topic: JSON Schemas (files beside this module) and tolerant parsing.

docs/contracts.md describes them for people; this module is what the code validates against.
Every parser raises ``InvalidMessage`` with a stable code (``bad_json``, ``schema``, ``bad_id``)
and never returns a message whose ids could escape an S3 prefix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import PurePosixPath
from typing import Any

import jsonschema

from video_runner.domain.ids import is_valid_id
from video_runner.domain.results import FrameResult
from video_runner.errors import ErrorCode, InvalidMessage


@dataclass(frozen=True, slots=True)
class VideoEvent:
    """An ``outbox_events`` message, normalised."""

    event_id: str
    bucket: str
    object_key: str
    media_type: str


@dataclass(frozen=True, slots=True)
class InferenceTask:
    """An ``inference_tasks`` message."""

    event_id: str
    frame_id: int
    bucket: str
    object_key: str
    timestamp_ms: int | None
    width: int | None
    height: int | None
    attempt: int

    def as_message(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "frame_id": self.frame_id,
            "bucket": self.bucket,
            "object": self.object_key,
            "timestamp_ms": self.timestamp_ms,
            "width": self.width,
            "height": self.height,
            "attempt": self.attempt,
        }


@dataclass(frozen=True, slots=True)
class ResultMessage:
    """An ``inference_results`` message, normalised (``frame`` read as ``frame_id``)."""

    event_id: str
    result: FrameResult


@cache
def _validator(name: str) -> jsonschema.protocols.Validator:
    text = resources.files(__package__).joinpath(f"{name}.schema.json").read_text("utf-8")
    schema = json.loads(text)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validator: jsonschema.protocols.Validator = cls(schema)
    return validator


def _load(raw: bytes | None, name: str) -> dict[str, Any]:
    if raw is None:
        raise InvalidMessage("message has no value", code=ErrorCode.BAD_JSON)
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidMessage(f"message is not JSON: {exc}", code=ErrorCode.BAD_JSON) from exc
    error = jsonschema.exceptions.best_match(_validator(name).iter_errors(document))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "message"
        raise InvalidMessage(f"{name} schema: {where}: {error.message}", code=ErrorCode.SCHEMA)
    if not isinstance(document, dict):  # the schemas say object; this narrows the type
        raise InvalidMessage(f"{name} must be a JSON object", code=ErrorCode.SCHEMA)
    return document


def _checked_id(value: str, what: str) -> str:
    if not is_valid_id(value):
        shown = value[:80] + ("..." if len(value) > 80 else "")  # noqa: PLR2004 - log width
        raise InvalidMessage(
            f"{what} {shown!r} is not allowed: use letters, digits, '-' or '_', at most 128",
            code=ErrorCode.BAD_ID,
        )
    return value


def _checked_key(key: str) -> str:
    # The raw segments, not PurePosixPath's: it folds "." away before we could see it.
    segments = key.split("/")
    if key.startswith("/") or any(s in {"", "..", "."} for s in segments) or "\\" in key:
        raise InvalidMessage(
            f"object key {key[:120]!r} is not a plain relative key", code=ErrorCode.BAD_ID
        )
    return key


def parse_video_event(raw: bytes | None, default_bucket: str) -> VideoEvent:
    """Read an ``outbox_events`` message: ``event_id``, else ``_id``, else the object's stem."""
    document = _load(raw, "outbox_event")
    payload = document["payload"]
    key = _checked_key(payload["object"])
    event_id = document.get("event_id") or document.get("_id") or PurePosixPath(key).stem
    return VideoEvent(
        event_id=_checked_id(str(event_id), "event id"),
        bucket=str(payload.get("bucket") or default_bucket),
        object_key=key,
        media_type=str(payload.get("media_type") or "video"),
    )


def parse_inference_task(raw: bytes | None) -> InferenceTask:
    document = _load(raw, "inference_task")
    return InferenceTask(
        event_id=_checked_id(document["event_id"], "event id"),
        frame_id=int(document["frame_id"]),
        bucket=document["bucket"],
        object_key=_checked_key(document["object"]),
        timestamp_ms=document.get("timestamp_ms"),
        width=document.get("width"),
        height=document.get("height"),
        attempt=int(document.get("attempt", 0)),
    )


def parse_inference_result(raw: bytes | None) -> ResultMessage:
    """Read an ``inference_results`` message; the older inference service sends ``frame``."""
    document = _load(raw, "inference_result")
    frame_id = document["frame_id"] if "frame_id" in document else document["frame"]
    error = document.get("error")
    return ResultMessage(
        event_id=_checked_id(document["event_id"], "event id"),
        result=FrameResult(
            frame_id=int(frame_id),
            timestamp_ms=document.get("timestamp_ms"),
            objects=list(document.get("objects") or []),
            error=None if error is None else str(error)[:1000],
            model=document.get("model"),
        ),
    )


def result_message(event_id: str, result: FrameResult) -> dict[str, Any]:
    """The ``inference_results`` message the inference worker publishes."""
    message: dict[str, Any] = {
        "event_id": event_id,
        "frame_id": result.frame_id,
        "timestamp_ms": result.timestamp_ms,
        "objects": result.objects,
        "model": result.model,
    }
    if result.error is not None:
        message["error"] = result.error
    return message
