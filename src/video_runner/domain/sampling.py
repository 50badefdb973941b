"""The sampling plan: which decoded frames are kept, and what a complete extraction looks like.

Frames are numbered 0, 1, 2, ... in presentation order (the order the decoder outputs them);
frame ``i`` is kept when ``i % every_n == 0``, so frame 0 is always kept and its number is its
``frame_id``. The count of a complete extraction follows from the frame count alone, which is how
callers check that nothing was silently lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from video_runner.domain.params import Sampling


@dataclass(frozen=True, slots=True)
class SamplingPlan:
    """Every ``every_n``-th frame, starting with frame 0."""

    every_n: int = 5

    def __post_init__(self) -> None:
        if self.every_n < 1:
            raise ValueError(f"every_n must be at least 1, got {self.every_n}")

    @classmethod
    def of(cls, sampling: Sampling) -> SamplingPlan:
        return cls(every_n=sampling.every_n)

    def is_selected(self, index: int) -> bool:
        """Whether the frame at 0-based presentation ``index`` is kept."""
        _require_non_negative("index", index)
        return index % self.every_n == 0

    def expected_frame_ids(self, frame_count: int) -> range:
        """The frame ids a complete extraction of ``frame_count`` frames yields, in order."""
        _require_non_negative("frame_count", frame_count)
        return range(0, frame_count, self.every_n)

    def expected_count(self, frame_count: int) -> int:
        """How many frames a complete extraction of ``frame_count`` frames yields."""
        _require_non_negative("frame_count", frame_count)
        return -(-frame_count // self.every_n)


def _require_non_negative(name: str, value: int) -> None:
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value}")
