"""The messages on every topic: JSON Schemas (files beside this module) and tolerant parsing.

docs/contracts.md describes them for people; this module is what the code validates against.
Parsing survives any bytes: every parser raises ``InvalidMessage`` with a stable code and nothing
else, whatever it is given:

=====================  =======================================================================
``message_too_large``  over ``max_bytes`` (``MAX_MESSAGE_BYTES``), checked before decoding
``bad_json``           no value (a tombstone), not UTF-8, not JSON, or NaN/Infinity/1e999
``too_deep``           nested deeper than ``MAX_JSON_DEPTH`` (never a ``RecursionError``)
``schema``             not an object, or not what the topic's schema says
``bad_id``             an id, an object key or a bucket name outside the allowlist
``bucket_not_allowed`` an event naming a bucket outside ``ALLOWED_SOURCE_BUCKETS``
``too_many_objects``   a result with more than ``max_objects`` (``MAX_OBJECTS_PER_FRAME``)
=====================  =======================================================================

The error carries the message's ``event_id`` when one could be read, so the dead-letter path
never parses the bytes a second time. Results are strict: finite numbers only, confidences in
[0, 1], boxes clamped to the frame when its size is known; objects whose box lies outside the
frame or whose class name is too long are dropped and counted in ``rejected_objects``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from pathlib import PurePosixPath
from typing import Any

import jsonschema
import pydantic

from video_runner.contracts.options import EventOptions
from video_runner.domain.ids import is_valid_id
from video_runner.domain.results import FrameResult
from video_runner.errors import ErrorCode, InvalidMessage

#: Default of ``MAX_MESSAGE_BYTES``: Kafka's default message limit.
DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024
#: Our messages nest four levels (result > objects > object > box); this leaves ample room and
#: stays far below the interpreter's recursion limit, in the parser and in the schema validator.
MAX_JSON_DEPTH = 32
_SHOWN = 120
#: S3's bucket naming rules: 3 to 63 of a-z, 0-9, '.' and '-', starting and ending alphanumeric.
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IP_ADDRESS = re.compile(r"\d{1,3}(\.\d{1,3}){3}")


@dataclass(frozen=True, slots=True)
class ResultLimits:
    """Bounds of one inference result (``MAX_OBJECTS_PER_FRAME``, ``MAX_CLASS_NAME_LENGTH``)."""

    max_objects: int = 1000
    max_class_name: int = 128


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
    #: The event's ``classes`` and ``min_confidence`` options, applied by the inference worker.
    classes: tuple[str, ...] | None = None
    min_confidence: float | None = None

    def as_message(self) -> dict[str, Any]:
        message = {
            "event_id": self.event_id,
            "frame_id": self.frame_id,
            "bucket": self.bucket,
            "object": self.object_key,
            "timestamp_ms": self.timestamp_ms,
            "width": self.width,
            "height": self.height,
            "attempt": self.attempt,
        }
        # Only when set: a task without options is byte for byte what it always was.
        if self.classes is not None:
            message["classes"] = list(self.classes)
        if self.min_confidence is not None:
            message["min_confidence"] = self.min_confidence
        return message


@dataclass(frozen=True, slots=True)
class ResultMessage:
    """An ``inference_results`` message, normalised (``frame`` read as ``frame_id``).

    ``rejected_objects`` counts the objects dropped from ``result.objects``: a box wholly outside
    the frame or empty, or a class name over the limit.
    """

    event_id: str
    result: FrameResult
    rejected_objects: int = 0


@cache
def _validator(name: str) -> jsonschema.protocols.Validator:
    text = resources.files(__package__).joinpath(f"{name}.schema.json").read_text("utf-8")
    schema = json.loads(text)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validator: jsonschema.protocols.Validator = cls(schema)
    return validator


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses to inf without ever calling parse_constant
        raise ValueError(f"{text[:40]} is not a finite number")
    return value


def decode_json(raw: bytes | None, *, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> object:
    """Strict JSON of at most ``max_bytes``, finite numbers only, at most ``MAX_JSON_DEPTH`` deep.

    Raises:
        InvalidMessage: ``message_too_large``, ``bad_json`` or ``too_deep``; never anything else.
    """
    if raw is None:
        raise InvalidMessage("message has no value", code=ErrorCode.BAD_JSON)
    if len(raw) > max_bytes:
        raise InvalidMessage(
            f"message is {len(raw)} bytes, above the limit of {max_bytes}",
            code=ErrorCode.MESSAGE_TOO_LARGE,
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidMessage(f"message is not UTF-8: {exc}", code=ErrorCode.BAD_JSON) from exc
    try:
        document = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError as exc:
        raise InvalidMessage("message is nested too deep", code=ErrorCode.TOO_DEEP) from exc
    except ValueError as exc:  # JSONDecodeError, NaN, 1e999, an integer of 5,000 digits
        raise InvalidMessage(f"message is not JSON: {exc}", code=ErrorCode.BAD_JSON) from exc
    if _depth_exceeds(document, MAX_JSON_DEPTH):
        raise InvalidMessage(
            f"message is nested deeper than {MAX_JSON_DEPTH} levels", code=ErrorCode.TOO_DEEP
        )
    return document


def _depth_exceeds(document: object, limit: int) -> bool:
    # Iterative, so that the check itself cannot overflow the stack it protects.
    stack: list[tuple[object, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: list[object] = list(value.values())
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _load(raw: bytes | None, name: str, max_bytes: int) -> dict[str, Any]:
    document = decode_json(raw, max_bytes=max_bytes)
    if not isinstance(document, dict):
        raise InvalidMessage(
            f"{name} must be a JSON object, not {type(document).__name__}", code=ErrorCode.SCHEMA
        )
    _validate(document, name)
    return document


def _validate(document: dict[str, Any], name: str) -> None:
    try:
        error = jsonschema.exceptions.best_match(_validator(name).iter_errors(document))
    except RecursionError as exc:  # a belt to the depth check's braces
        raise InvalidMessage("message is nested too deep", code=ErrorCode.TOO_DEEP) from exc
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "message"
        message = error.message if len(error.message) <= _SHOWN else error.message[:_SHOWN] + "..."
        raise InvalidMessage(
            f"{name} schema: {where}: {message}",
            code=ErrorCode.SCHEMA,
            event_id=_event_id_hint(document),
        )


def _valid_event_id(value: object) -> str | None:
    return value if isinstance(value, str) and is_valid_id(value) else None


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


def _check_bucket(bucket: str, allowed: frozenset[str]) -> None:
    # The name first: "not allowed" would hide that the sender builds names S3 never accepts.
    if not _BUCKET_NAME.fullmatch(bucket) or ".." in bucket or _IP_ADDRESS.fullmatch(bucket):
        raise InvalidMessage(
            f"bucket {bucket[:80]!r} is not a valid S3 bucket name", code=ErrorCode.BAD_ID
        )
    if bucket not in allowed:
        raise InvalidMessage(
            f"bucket {bucket!r} is not one of the allowed source buckets"
            f" ({', '.join(sorted(allowed)) or 'none'})",
            code=ErrorCode.BUCKET_NOT_ALLOWED,
        )


def _event_id_hint(document: Mapping[str, Any]) -> str | None:
    """The event id the parser would choose, if it is a valid one (else None, never a guess)."""
    chosen = document.get("event_id") or document.get("_id")
    if chosen is None:
        payload = document.get("payload")
        key = payload.get("object") if isinstance(payload, dict) else None
        chosen = PurePosixPath(key).stem if isinstance(key, str) else None
    return _valid_event_id(chosen)


def event_id_hint(raw: bytes | None, *, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> str | None:
    """The valid event id in a message, or None; never raises, whatever the bytes.

    For the rare dead letter of a message whose parse succeeded but whose handling failed: a
    failed parse already hands it over in ``InvalidMessage.event_id``.
    """
    try:
        document = decode_json(raw, max_bytes=max_bytes)
    except InvalidMessage:
        return None
    return _event_id_hint(document) if isinstance(document, dict) else None


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
    document = _load(raw, "outbox_event", max_bytes)
    try:
        payload = document["payload"]
        key = _checked_key(payload["object"])
        event_id = document.get("event_id") or document.get("_id") or PurePosixPath(key).stem
        bucket = str(payload.get("bucket") or default_bucket)
        if allowed_buckets is not None and bucket != default_bucket:
            _check_bucket(bucket, allowed_buckets)
        event = VideoEvent(
            event_id=_checked_id(str(event_id), "event id"),
            bucket=bucket,
            object_key=key,
            media_type=str(payload.get("media_type") or "video"),
        )
        if payload.get("options") is None:
            return event
        return replace(event, options=_options(payload["options"], event))
    except InvalidMessage as exc:
        exc.event_id = exc.event_id or _event_id_hint(document)
        raise


def _options(raw: object, event: VideoEvent) -> EventOptions:
    try:
        return EventOptions.model_validate(raw)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'options'}: {error['msg']}"
            for error in exc.errors()
        )
        raise OptionsRejected(f"payload.options: {problems}"[: _SHOWN * 4], event) from exc


def parse_inference_task(
    raw: bytes | None, *, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> InferenceTask:
    document = _load(raw, "inference_task", max_bytes)
    event_id = _checked_id(document["event_id"], "event id")
    try:
        key = _checked_key(document["object"])
    except InvalidMessage as exc:
        exc.event_id = event_id
        raise
    return InferenceTask(
        event_id=event_id,
        frame_id=int(document["frame_id"]),
        bucket=document["bucket"],
        object_key=key,
        timestamp_ms=document.get("timestamp_ms"),
        width=document.get("width"),
        height=document.get("height"),
        attempt=int(document.get("attempt", 0)),
        classes=None if document.get("classes") is None else tuple(document["classes"]),
        min_confidence=document.get("min_confidence"),
    )


def parse_inference_result(
    raw: bytes | None,
    *,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    limits: ResultLimits = ResultLimits(),
    frame_size: tuple[int, int] | None = None,
) -> ResultMessage:
    """Read an ``inference_results`` message strictly; the older service sends ``frame``.

    Args:
        raw: the message value.
        max_bytes: ``MAX_MESSAGE_BYTES``.
        limits: ``MAX_OBJECTS_PER_FRAME`` and ``MAX_CLASS_NAME_LENGTH``.
        frame_size: (width, height) of the frame, when the caller knows it from the task; else
            the message's own ``width`` and ``height``, if it carries them.

    Boxes are clamped to the frame (to x, y >= 0 when its size is unknown); an object whose box
    is inverted or empty once clamped, or whose class name is too long, is dropped and counted
    in ``rejected_objects``.
    """
    document = decode_json(raw, max_bytes=max_bytes)
    if not isinstance(document, dict):
        raise InvalidMessage(
            f"inference_result must be a JSON object, not {type(document).__name__}",
            code=ErrorCode.SCHEMA,
        )
    objects = document.get("objects")
    # Before the schema: validating 24,000 objects would cost a second of CPU first.
    if isinstance(objects, list) and len(objects) > limits.max_objects:
        raise InvalidMessage(
            f"{len(objects)} objects in one frame, above the limit of {limits.max_objects}",
            code=ErrorCode.TOO_MANY_OBJECTS,
            event_id=_event_id_hint(document),
        )
    _validate(document, "inference_result")
    event_id = _checked_id(document["event_id"], "event id")
    frame_id = document["frame_id"] if "frame_id" in document else document["frame"]
    error = document.get("error")
    size = frame_size or _size_of(document)
    kept, rejected = _screen_objects(objects or [], size, limits.max_class_name)
    return ResultMessage(
        event_id=event_id,
        result=FrameResult(
            frame_id=int(frame_id),
            timestamp_ms=document.get("timestamp_ms"),
            objects=kept,
            error=None if error is None else str(error)[:1000],
            model=document.get("model"),
        ),
        rejected_objects=rejected,
    )


def _size_of(document: Mapping[str, Any]) -> tuple[int, int] | None:
    width, height = document.get("width"), document.get("height")
    return (width, height) if isinstance(width, int) and isinstance(height, int) else None


def _screen_objects(
    objects: list[dict[str, Any]], size: tuple[int, int] | None, max_class_name: int
) -> tuple[list[dict[str, Any]], int]:
    kept: list[dict[str, Any]] = []
    for item in objects:
        box = _clamped(item["box"], size)
        if box is not None and len(item["class"]) <= max_class_name:
            kept.append({**item, "box": box})
    return kept, len(objects) - len(kept)


def _clamped(box: list[float], size: tuple[int, int] | None) -> list[float] | None:
    """The box within the frame, or None if nothing of it is left (or it is inverted)."""
    x1, y1, x2, y2 = (max(v, 0) for v in box)
    if size is not None:
        width, height = size
        x1, x2 = min(x1, width), min(x2, width)
        y1, y2 = min(y1, height), min(y2, height)
    if x2 <= x1 or y2 <= y1:
        return None
    return [x1, y1, x2, y2]


def result_message(
    event_id: str, result: FrameResult, *, width: int | None = None, height: int | None = None
) -> dict[str, Any]:
    """The ``inference_results`` message the inference worker publishes.

    ``width`` and ``height`` echo the task's frame size, so the runner can clamp the boxes.
    """
    message: dict[str, Any] = {
        "event_id": event_id,
        "frame_id": result.frame_id,
        "timestamp_ms": result.timestamp_ms,
        "objects": result.objects,
        "model": result.model,
    }
    if width is not None and height is not None:
        message["width"] = width
        message["height"] = height
    if result.error is not None:
        message["error"] = result.error
    return message
