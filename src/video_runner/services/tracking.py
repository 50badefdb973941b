"""Linking one video's objects into tracks while its merged result is written, frame by frame.

The tracker (``ports.BoxTracker``) matches; ``domain.tracks.TrackBook`` numbers the tracks and
sums them up. Frames come in ascending ``frame_id``; a failed frame counts as a frame with no
objects, so tracks not seen for a while still end.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from video_runner.domain.results import FrameResult
from video_runner.domain.tracks import Box, TrackBook, trackable
from video_runner.ports import TrackerFactory


class FrameTracking:
    """The tracks of one video, built as its frames go by."""

    def __init__(self, trackers: TrackerFactory) -> None:
        self._tracker = trackers()
        self._book = TrackBook()

    def link(self, results: Sequence[FrameResult]) -> list[FrameResult]:
        """The results, in the order given, with a ``track_id`` on every tracked object.

        CPU work: a caller on the event loop runs it in a thread, a chunk of frames at a time.
        """
        return [self._link_one(result) for result in results]

    def _link_one(self, result: FrameResult) -> FrameResult:
        positions: list[int] = []
        boxes: list[Box] = []
        scores: list[float] = []
        labels: list[str] = []
        for position, obj in enumerate(result.objects):
            box = trackable(obj)
            if box is None:
                continue
            positions.append(position)
            boxes.append(box)
            scores.append(float(obj.get("conf") or 0.0))
            labels.append(str(obj.get("class", "?")))
        found = self._tracker.update(boxes, scores, labels)
        local_ids: list[int | None] = [None] * len(result.objects)
        for position, local in zip(positions, found, strict=True):
            local_ids[position] = local
        objects = self._book.label(result.frame_id, result.timestamp_ms, result.objects, local_ids)
        return dataclasses.replace(result, objects=objects)

    def summaries(self) -> list[dict[str, Any]]:
        """The final JSON's ``tracks``: one summary per track, by track id."""
        return self._book.summaries()
