"""``inference_tasks``: one frame to run the detector on. The model is the message's schema."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from video_runner.contracts.json_input import DEFAULT_MAX_MESSAGE_BYTES, decode_json, json_object
from video_runner.contracts.names import checked_id, checked_key
from video_runner.contracts.reinfer_event import DETECTOR_PATTERN
from video_runner.contracts.validation import WholeNumber, validated
from video_runner.errors import InvalidMessage


def _list_as_tuple(value: object) -> object:
    return tuple(value) if isinstance(value, list) else value


class InferenceTask(BaseModel):
    """inference_tasks message: one frame to run the detector on."""

    model_config = ConfigDict(
        frozen=True, strict=True, populate_by_name=True, title="inference_tasks message"
    )

    event_id: str
    frame_id: WholeNumber = Field(ge=0)
    bucket: str
    object_key: str = Field(validation_alias="object", serialization_alias="object")
    timestamp_ms: WholeNumber | None = None
    #: None when the frame's size is unknown: a task the reaper rebuilds from an old record.
    width: WholeNumber | None = Field(default=None, ge=1)
    height: WholeNumber | None = Field(default=None, ge=1)
    attempt: WholeNumber = Field(default=0, ge=0)
    #: The event's ``classes`` and ``min_confidence`` options, applied by the inference worker.
    classes: Annotated[tuple[str, ...], BeforeValidator(_list_as_tuple)] | None = None
    min_confidence: float | None = Field(default=None, ge=0, le=1)
    #: The detector kind a re-run asks for (``hog``, ``onnx``, ...); absent: the worker's own.
    detector: str | None = Field(default=None, pattern=DETECTOR_PATTERN)

    def as_message(self) -> dict[str, Any]:
        # Options only when set: a task without them is byte for byte what it always was.
        message = self.model_dump(by_alias=True, mode="json")
        for option in ("classes", "min_confidence", "detector"):
            if message[option] is None:
                del message[option]
        return message


def parse_inference_task(
    raw: bytes | None, *, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> InferenceTask:
    document = json_object(decode_json(raw, max_bytes=max_bytes), "inference_task")
    task = validated(document, InferenceTask, "inference_task")
    checked_id(task.event_id, "event id")
    try:
        checked_key(task.object_key)
    except InvalidMessage as exc:
        exc.event_id = task.event_id
        raise
    return task
