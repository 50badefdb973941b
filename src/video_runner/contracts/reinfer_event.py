"""``outbox_events`` of ``"type": "reinfer"``: run an event's stored frames again through another
detector, for a new version of its result (docs/contracts.md).

They share the topic with the videos to process, so a producer needs one outbox; ``is_reinfer``
tells the two apart before either parser runs.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from video_runner.contracts.json_input import DEFAULT_MAX_MESSAGE_BYTES, decode_json, json_object
from video_runner.contracts.names import checked_id
from video_runner.contracts.validation import validated
from video_runner.errors import InvalidMessage

#: A detector kind: lower-case letters, digits, ``-`` and ``_`` (``hog``, ``onnx``).
DETECTOR_PATTERN = r"^[a-z0-9_-]{1,32}$"
#: The allowlist of ids, for the request id (it becomes part of a claim's ``_id``).
_ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"


class ReinferEvent(BaseModel):
    """outbox_events message of type reinfer: a new version of an event's result."""

    model_config = ConfigDict(frozen=True, strict=True, title="outbox_events reinfer message")

    type: Literal["reinfer"]
    event_id: str = Field(
        pattern=_ID_PATTERN, description="the event to run again (a version: its original)"
    )
    request_id: str = Field(
        pattern=_ID_PATTERN,
        description="the producer's id of this request: copies of one request make one version",
    )
    detector: str | None = Field(
        default=None,
        pattern=DETECTOR_PATTERN,
        description="the detector kind to run (hog, onnx); absent: the inference workers' own",
    )

    def as_message(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


def is_reinfer(raw: bytes | None, *, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> bool:
    """Whether an ``outbox_events`` message is a re-run request; never raises (anything that
    does not parse is a video event's parser's to refuse)."""
    try:
        document = decode_json(raw, max_bytes=max_bytes)
    except InvalidMessage:
        return False
    return isinstance(document, dict) and document.get("type") == "reinfer"


def parse_reinfer_event(
    raw: bytes | None, *, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> ReinferEvent:
    """The request in ``raw``; ``InvalidMessage`` for anything else (see the package's codes)."""
    document = json_object(decode_json(raw, max_bytes=max_bytes), "reinfer_event")
    event = validated(document, ReinferEvent, "reinfer_event")
    checked_id(event.event_id, "event id")
    return event
