"""What the runner knows about a video and the frames it takes from it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """Properties of the video stream, as the container declares them (frames upright)."""

    width: int
    height: int
    fps: float
    frame_count: int | None
    duration_ms: int | None
    rotation: int
    codec: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ExtractedFrame:
    """One sampled, preprocessed frame, encoded as JPEG."""

    frame_id: int
    timestamp_ms: int
    width: int
    height: int
    jpeg: bytes
