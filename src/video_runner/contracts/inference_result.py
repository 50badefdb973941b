"""``inference_results``: the detections of one frame, read strictly and screened.

Finite numbers only, confidences in [0, 1], boxes clamped to the frame when its size is known;
objects whose box lies outside the frame or whose class name is too long are dropped and counted
in ``rejected_objects``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from video_runner.contracts.json_input import DEFAULT_MAX_MESSAGE_BYTES, decode_json, json_object
from video_runner.contracts.names import checked_id, event_id_in
from video_runner.contracts.validation import WholeNumber, validated
from video_runner.domain.results import FrameResult
from video_runner.errors import ErrorCode, InvalidMessage

_MAX_ERROR = 1000


@dataclass(frozen=True, slots=True)
class ResultLimits:
    """Bounds of one inference result (``MAX_OBJECTS_PER_FRAME``, ``MAX_CLASS_NAME_LENGTH``)."""

    max_objects: int = 1000
    max_class_name: int = 128


class DetectedObject(BaseModel):
    """One detection: a class, a box [x1, y1, x2, y2] in pixels and a confidence."""

    model_config = ConfigDict(frozen=True, strict=True, populate_by_name=True)

    class_name: str = Field(alias="class")
    box: list[float] = Field(min_length=4, max_length=4)
    conf: float = Field(ge=0, le=1)


class InferenceResult(BaseModel):
    """inference_results message: the detections of one frame (the older service sends frame)."""

    model_config = ConfigDict(
        frozen=True,
        strict=True,
        title="inference_results message",
        json_schema_extra={"anyOf": [{"required": ["frame_id"]}, {"required": ["frame"]}]},
    )

    event_id: str
    frame_id: WholeNumber | None = Field(default=None, ge=0)
    frame: WholeNumber | None = Field(default=None, ge=0)
    timestamp_ms: WholeNumber | None = None
    objects: list[DetectedObject] | None = None
    width: WholeNumber | None = Field(default=None, ge=1)
    height: WholeNumber | None = Field(default=None, ge=1)
    model: str | None = None
    error: str | None = None

    @model_validator(mode="after")
    def _numbered(self) -> InferenceResult:
        if self.frame_id is None and self.frame is None:
            raise ValueError("frame_id (or frame) is required")
        return self


@dataclass(frozen=True, slots=True)
class ResultMessage:
    """An ``inference_results`` message, normalised (``frame`` read as ``frame_id``).

    ``rejected_objects`` counts the objects dropped from ``result.objects``: a box wholly outside
    the frame or empty, or a class name over the limit.
    """

    event_id: str
    result: FrameResult
    rejected_objects: int = 0


def parse_inference_result(
    raw: bytes | None,
    *,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    limits: ResultLimits = ResultLimits(),
    frame_size: tuple[int, int] | None = None,
) -> ResultMessage:
    """Read an ``inference_results`` message strictly.

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
    document = json_object(decode_json(raw, max_bytes=max_bytes), "inference_result")
    objects = document.get("objects")
    # Before validating: 24,000 objects would cost a second of CPU first.
    if isinstance(objects, list) and len(objects) > limits.max_objects:
        raise InvalidMessage(
            f"{len(objects)} objects in one frame, above the limit of {limits.max_objects}",
            code=ErrorCode.TOO_MANY_OBJECTS,
            event_id=event_id_in(document),
        )
    message = validated(document, InferenceResult, "inference_result")
    event_id = checked_id(message.event_id, "event id")
    frame_id = message.frame_id if message.frame_id is not None else message.frame
    assert frame_id is not None  # noqa: S101 - the model's validator requires one
    size = frame_size or _size_of(message)
    # The objects as sent (extra keys included), their boxes clamped: only the check is typed.
    sent: list[dict[str, Any]] = objects if isinstance(objects, list) else []
    kept, rejected = _screen_objects(sent, message.objects or [], size, limits.max_class_name)
    return ResultMessage(
        event_id=event_id,
        result=FrameResult(
            frame_id=frame_id,
            timestamp_ms=message.timestamp_ms,
            objects=kept,
            error=None if message.error is None else message.error[:_MAX_ERROR],
            model=message.model,
        ),
        rejected_objects=rejected,
    )


def _size_of(message: InferenceResult) -> tuple[int, int] | None:
    if message.width is None or message.height is None:
        return None
    return (message.width, message.height)


def _screen_objects(
    sent: list[dict[str, Any]],
    checked: list[DetectedObject],
    size: tuple[int, int] | None,
    max_class_name: int,
) -> tuple[list[dict[str, Any]], int]:
    kept: list[dict[str, Any]] = []
    for item, detection in zip(sent, checked, strict=True):
        box = _clamped(item["box"], size)  # as sent: 3 stays 3, never becomes 3.0
        if box is not None and len(detection.class_name) <= max_class_name:
            kept.append({**item, "box": box})
    return kept, len(checked) - len(kept)


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
