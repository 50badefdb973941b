"""Segments: one long video cut at independent pictures into pieces that runners take apart.

A cut is a position in decoding order where an IDR picture starts and no picture before it is
shown after any picture from it on (``extraction.decode_chunks.independent_starts``). There, the
pictures before the cut are exactly the first ``first_frame`` pictures shown, so a segment's
frames are the global presentation indices ``first_frame .. first_frame + frames - 1``: frame
ids, timestamps and sampling stay global whoever decodes the segment
(docs/decisions/0016-segments-across-runners.md).

This module is pure: where to cut (``cut_positions``), and what each segment holds
(:class:`Segment`), from the sample table the planner read.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from video_runner.domain.sampling import SamplingPlan
from video_runner.domain.video import VideoInfo


@dataclass(frozen=True, slots=True)
class Segment:
    """One piece of a video, as a runner decodes it: where it starts and what it yields."""

    index: int
    count: int
    #: Global presentation index of its first frame (= its first sample in decoding order).
    first_frame: int
    #: Pictures in it (samples, and frames shown).
    frames: int
    #: Its first sample's decoding and presentation timestamps (stream time base), to seek to.
    first_dts: int
    seek_pts: int
    #: The earliest and latest presentation timestamps of its pictures (checked on decoding).
    first_pts: int
    last_pts: int
    #: The origin of every timestamp of the video (the stream's start).
    start_pts: int
    #: Sampled frames of the video before this segment: the ordinal of its first sampled frame.
    first_ordinal: int
    #: The global frame ids it keeps, in order.
    selected: tuple[int, ...]

    @property
    def end_frame(self) -> int:
        return self.first_frame + self.frames

    def keeps(self, frame_id: int) -> bool:
        """Whether the sampling keeps ``frame_id`` (``selected`` is sorted)."""
        at = bisect_left(self.selected, frame_id)
        return at < len(self.selected) and self.selected[at] == frame_id

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "count": self.count,
            "first_frame": self.first_frame,
            "frames": self.frames,
            "first_dts": self.first_dts,
            "seek_pts": self.seek_pts,
            "first_pts": self.first_pts,
            "last_pts": self.last_pts,
            "start_pts": self.start_pts,
            "first_ordinal": self.first_ordinal,
            "selected": list(self.selected),
        }


@dataclass(frozen=True, slots=True)
class SegmentPlan:
    """A video cut into segments (one segment: decode it whole, as without segments)."""

    segments: tuple[Segment, ...]
    #: Pictures in the video, and how many the sampling keeps (the event's ``total_frames``).
    pictures: int
    sampled: int


@dataclass(frozen=True, slots=True)
class Planned:
    """What planning found: the video's properties and its segments, or why it has none (then
    nothing was decoded, and ``info`` is None)."""

    info: VideoInfo | None
    plan: SegmentPlan | None
    #: Why the video is not cut (``plan`` is None), for the log.
    reason: str | None = None


def cut_positions(
    candidates: Sequence[int],
    times_s: Sequence[float],
    seconds: float,
    is_fresh: Callable[[int], bool],
) -> list[int]:
    """Decoding positions to cut at: about every ``seconds`` of presentation time.

    ``candidates`` are the positions where a cut may go (increasing), ``times_s`` their
    presentation times; ``is_fresh`` confirms a candidate (reading its picture) and is asked
    only about the ones considered. Position 0 always starts the first segment; a last segment
    shorter than half of ``seconds`` joins the one before it.
    """
    cuts = [0]
    if not candidates:
        return cuts
    end_s = max(times_s) if times_s else 0.0
    last_s = 0.0
    for position, time_s in zip(candidates, times_s, strict=True):
        if position == 0 or time_s < last_s + seconds:
            continue
        if end_s - time_s < seconds / 2:
            break
        if is_fresh(position):
            cuts.append(position)
            last_s = time_s
    return cuts


def selected_ids(
    plan: SamplingPlan, pictures: int, times_ms: Sequence[int] | None
) -> Sequence[int]:
    """The global frame ids ``plan`` keeps among ``pictures`` frames (sorted): by index alone
    for ``every_n``, from every frame's timestamp otherwise."""
    if not plan.is_time_based:
        return range(0, pictures, plan.every_n or 1)
    if times_ms is None:
        raise ValueError("a plan involving time needs every frame's timestamp")
    return sorted(plan.select(times_ms))


def ids_between(ids: Sequence[int], start: int, end: int) -> tuple[int, ...]:
    """The ids in ``[start, end)`` of the sorted ``ids``."""
    if isinstance(ids, range):
        step = ids.step
        first = max(ids.start, math.ceil(start / step) * step)
        return tuple(range(first, min(end, ids.stop), step))
    return tuple(ids[bisect_left(ids, start) : bisect_left(ids, end)])
