"""``predictable_events``: the runner tells the outbox-S3 workers an event has every result."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from video_runner.contracts.json_input import DEFAULT_MAX_MESSAGE_BYTES, decode_json, json_object
from video_runner.contracts.names import checked_id
from video_runner.contracts.validation import validated


class PredictableEvent(BaseModel):
    """predictable_events message about ``event_id``: ``predictable``, every frame has its
    result (write its JSON); ``published``, every task is published (a merge may start)."""

    model_config = ConfigDict(frozen=True, strict=True, title="predictable_events message")

    event_id: str
    status: Literal["predictable", "published"] = "predictable"

    def as_message(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def parse_predictable_event(
    raw: bytes | None, *, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> PredictableEvent:
    """The message in ``raw``; ``InvalidMessage`` for anything else (see the package's codes)."""
    document = json_object(decode_json(raw, max_bytes=max_bytes), "predictable_event")
    event = validated(document, PredictableEvent, "predictable_event")
    checked_id(event.event_id, "event id")
    return event
