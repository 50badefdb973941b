"""The tracker behind ``ports.BoxTracker``: norfair (the maintained ``norfair-enough`` line),
matching boxes frame to frame by IoU with a Kalman filter per track (docs/decisions/0014).

One ``Tracker`` per video, with labels, so a box only joins a track of its own class. Every
detection starts a track at once (no initialisation delay): a sampled video is already sparse in
time, and an object seen once is still worth an id. Norfair numbers tracks per tracker
instance, with no randomness, so the same detections give the same ids.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from video_runner.domain.tracks import Box
from video_runner.ports import BoxTracker


class NorfairTracker:
    """Implements ``ports.BoxTracker`` for one video."""

    def __init__(self, *, min_iou: float, lost_frames: int) -> None:
        # Imported here: norfair brings scipy and rich (~60 MB), which only the process that
        # tracks should pay for, not every process built through the composition root.
        import norfair

        self._detection = norfair.Detection
        # norfair's "iou" distance is 1 - IoU: a match needs IoU above min_iou.
        self._tracker = norfair.Tracker(
            distance_function="iou",
            distance_threshold=1.0 - min_iou,
            hit_counter_max=lost_frames,
            initialization_delay=0,
        )
        self._frame = 0

    def update(
        self, boxes: Sequence[Box], scores: Sequence[float], labels: Sequence[str]
    ) -> list[int | None]:
        self._frame += 1
        detections = [
            self._detection(
                points=np.array([[x1, y1], [x2, y2]], dtype=np.float64),
                scores=np.array([score, score], dtype=np.float64),
                label=label,
                # Which object of which frame: a track's last detection says whether (and
                # to which object) it was matched in this frame.
                data=(self._frame, index),
            )
            for index, ((x1, y1, x2, y2), score, label) in enumerate(
                zip(boxes, scores, labels, strict=True)
            )
        ]
        ids: list[int | None] = [None] * len(detections)
        for tracked in self._tracker.update(detections or None):
            data: Any = tracked.last_detection.data
            if isinstance(data, tuple) and data[0] == self._frame and tracked.id is not None:
                ids[data[1]] = int(tracked.id)
        return ids


def norfair_trackers(*, min_iou: float, lost_frames: int) -> Callable[[], BoxTracker]:
    """The ``ports.TrackerFactory`` the settings ask for (``TRACK_MIN_IOU``, ...)."""

    def build() -> BoxTracker:
        return NorfairTracker(min_iou=min_iou, lost_frames=lost_frames)

    return build
