"""The sampling plan: which decoded frames are kept, and what a complete extraction looks like.

Frames are numbered 0, 1, 2, ... in presentation order (the order the decoder outputs them), and
that number is the ``frame_id`` whatever the plan. Three forms, per event (``payload.options``):

* every ``every_n``-th frame: frame ``i`` is kept when ``i % every_n == 0`` (the default, 5);
* by time, ``fps``: for each instant ``start + k / fps`` the frame whose timestamp is nearest
  (the earlier one on a tie), so a variable-frame-rate video is sampled evenly in time;
* either of them within a time range ``[start_ms, end_ms)``: only frames whose timestamp lies
  inside it, still numbered by their index in the whole video.

A plan that involves time is decided from every frame's timestamp at once (:meth:`select`), which
a demux-only pass reads before anything is decoded; ``every_n`` alone needs only the index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from video_runner.domain.params import Sampling


@dataclass(frozen=True, slots=True)
class SamplingPlan:
    """Every ``every_n``-th frame (or ``fps`` frames per second), within an optional range."""

    every_n: int | None = 5
    fps: float | None = None
    start_ms: int | None = None
    end_ms: int | None = None

    def __post_init__(self) -> None:
        if (self.every_n is None) == (self.fps is None):
            raise ValueError("a sampling plan has exactly one of every_n and fps")
        if self.every_n is not None and self.every_n < 1:
            raise ValueError(f"every_n must be at least 1, got {self.every_n}")
        if self.fps is not None and not self.fps > 0:
            raise ValueError(f"fps must be above 0, got {self.fps}")
        if self.start_ms is not None and self.start_ms < 0:
            raise ValueError(f"start_ms must not be negative, got {self.start_ms}")
        if self.end_ms is not None and self.end_ms <= (self.start_ms or 0):
            raise ValueError(f"end_ms must be after start_ms, got {self.end_ms}")

    @classmethod
    def of(cls, sampling: Sampling) -> SamplingPlan:
        return cls(every_n=sampling.every_n)

    @property
    def is_time_based(self) -> bool:
        """Whether selection needs the frames' timestamps (fps, or a range), not just indices."""
        return self.fps is not None or self.start_ms is not None or self.end_ms is not None

    def as_dict(self) -> dict[str, Any]:
        """The document's ``sampling`` field: only what is set (``{"every_n": 5}`` as before)."""
        fields = {
            "every_n": self.every_n,
            "fps": self.fps,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
        }
        return {key: value for key, value in fields.items() if value is not None}

    def rough_every(self, video_fps: float) -> int:
        """About one in how many decoded frames is kept (for limits that count decoded frames)."""
        if self.every_n is not None:
            return self.every_n
        assert self.fps is not None  # noqa: S101 - one of the two, checked at construction
        return max(1, int(video_fps // self.fps)) if video_fps > 0 else 1

    def is_selected(self, index: int) -> bool:
        """Whether the frame at 0-based presentation ``index`` is kept (``every_n`` plans only)."""
        _require_non_negative("index", index)
        if self.every_n is None or self.is_time_based:
            raise ValueError("a plan involving time selects from timestamps: use select()")
        return index % self.every_n == 0

    def select(self, timestamps_ms: Sequence[int]) -> frozenset[int]:
        """The indices kept among frames with these timestamps (in presentation order)."""
        start = self.start_ms or 0
        end = self.end_ms
        inside = [
            (index, ts)
            for index, ts in enumerate(timestamps_ms)
            if ts >= start and (end is None or ts < end)
        ]
        if self.every_n is not None:
            return frozenset(index for index, _ in inside if index % self.every_n == 0)
        assert self.fps is not None  # noqa: S101 - one of the two, checked at construction
        return _nearest_to_each_step(inside, start, end, 1000.0 / self.fps)

    def expected_frame_ids(self, frame_count: int) -> range:
        """The frame ids a complete extraction of ``frame_count`` frames yields, in order."""
        _require_non_negative("frame_count", frame_count)
        return range(0, frame_count, self._every_n_only())

    def expected_count(self, frame_count: int) -> int:
        """How many frames a complete extraction of ``frame_count`` frames yields."""
        _require_non_negative("frame_count", frame_count)
        return -(-frame_count // self._every_n_only())

    def _every_n_only(self) -> int:
        if self.every_n is None or self.is_time_based:
            raise ValueError("only an every_n plan follows from the frame count alone")
        return self.every_n


def _nearest_to_each_step(
    frames: Sequence[tuple[int, int]], start: int, end: int | None, step_ms: float
) -> frozenset[int]:
    """For each instant ``start + k * step_ms`` up to the last frame, the nearest frame.

    Instants past the last frame (or the range's end) have no frame: a video is not stretched.
    A frame nearest to several instants (a rate above the video's) is kept once.
    """
    if not frames:
        return frozenset()
    chosen: set[int] = set()
    last_ts = frames[-1][1]
    position = 0
    k = 0
    while True:
        instant = start + k * step_ms  # from k, not summed: no drift over hours
        if instant > last_ts or (end is not None and instant >= end):
            break
        while position + 1 < len(frames) and frames[position + 1][1] <= instant:
            position += 1
        index, ts = frames[position]
        if ts <= instant and position + 1 < len(frames):
            following, following_ts = frames[position + 1]
            # The nearest wins; on a tie the earlier frame.
            if following_ts - instant < instant - ts:
                index = following
        chosen.add(index)
        k += 1
    return frozenset(chosen)


def _require_non_negative(name: str, value: int) -> None:
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value}")
