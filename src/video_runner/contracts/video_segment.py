"""``video_segments``: one segment of a long video for any runner to decode (docs/contracts.md).

The runner that plans a video publishes one per segment, keyed by segment, so they spread over
the topic's partitions and every runner's ``runner-segments-group`` consumer takes some. Each
carries the video's event as it came (parsed again, with every check of ``outbox_events``), the
object's size (for ranged reads) and what the plan knows of the segment.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from video_runner.contracts.json_input import DEFAULT_MAX_MESSAGE_BYTES, decode_json, json_object
from video_runner.contracts.names import checked_id
from video_runner.contracts.validation import WholeNumber, validated
from video_runner.domain.segments import Segment


class SegmentPart(BaseModel):
    """Where a segment starts in the video, what it holds and what it keeps."""

    model_config = ConfigDict(frozen=True, strict=True, title="segment")

    index: WholeNumber = Field(ge=0)
    count: WholeNumber = Field(ge=2)
    first_frame: WholeNumber = Field(ge=0, description="global index of its first frame")
    frames: WholeNumber = Field(ge=1, description="pictures in it")
    first_dts: int = Field(description="decoding timestamp of its first picture")
    seek_pts: int = Field(description="presentation timestamp of its first picture")
    first_pts: int
    last_pts: int
    start_pts: int = Field(description="the video's origin of timestamps")
    first_ordinal: WholeNumber = Field(ge=0, description="sampled frames before it")
    selected: list[WholeNumber] = Field(description="the global frame ids it keeps, in order")

    def segment(self) -> Segment:
        return Segment(**{**self.model_dump(), "selected": tuple(self.selected)})


class SegmentTask(BaseModel):
    """video_segments message: one segment of a video to decode, upload and publish."""

    model_config = ConfigDict(frozen=True, strict=True, title="video_segments message")

    event_id: str
    size_bytes: WholeNumber = Field(ge=1, description="the video object's size")
    event: dict[str, JsonValue] = Field(description="the outbox_events message, as it came")
    segment: SegmentPart

    @classmethod
    def of(
        cls, event_id: str, size_bytes: int, event: dict[str, Any], segment: Segment
    ) -> SegmentTask:
        return cls(
            event_id=event_id,
            size_bytes=size_bytes,
            event=event,
            segment=SegmentPart(**{**segment.as_dict(), "selected": list(segment.selected)}),
        )

    def as_message(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def parse_segment_task(
    raw: bytes | None, *, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> SegmentTask:
    """The segment in ``raw``; ``InvalidMessage`` for anything else (see the package's codes)."""
    document = json_object(decode_json(raw, max_bytes=max_bytes), "video_segment")
    task = validated(document, SegmentTask, "video_segment")
    checked_id(task.event_id, "event id")
    return task
