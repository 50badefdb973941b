"""Frames in, detections out: the extractor and the detector."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from video_runner.domain.detections import Detection
from video_runner.domain.sampling import SamplingPlan
from video_runner.domain.segments import Planned, Segment
from video_runner.domain.tracks import Box
from video_runner.domain.video import ExtractedFrame, VideoInfo

Image = npt.NDArray[np.uint8]


class FrameSource(Protocol):
    """Decodes a local video file into sampled, preprocessed JPEG frames."""

    def probe(self, path: Path) -> VideoInfo:
        """Validate the file and read its properties; raises ``InvalidVideo`` if unusable."""
        ...

    def extract(
        self, path: Path, plan: SamplingPlan | None = None
    ) -> AsyncGenerator[ExtractedFrame, None]:
        """Yield sampled frames in frame_id order; CPU work runs off the event loop.

        ``plan`` is this video's sampling (its event's options); ``None``: the source's default.

        Closing the generator early (``aclose``) stops the decoder and frees its resources.
        """
        ...


#: ``fetch(start, end)``: bytes ``[start, end)`` of a remote video, called from worker threads.
Fetch = Callable[[int, int], bytes]


class SegmentSource(Protocol):
    """Plans a remote video's segments from its index and decodes one segment, reading the
    object by byte range through ``fetch`` (``size`` bytes; ``name`` for messages)."""

    def plan_segments(
        self, fetch: Fetch, size: int, name: str, plan: SamplingPlan, seconds: float
    ) -> Planned:
        """Probe the video and cut it into segments of about ``seconds``, or say why not.

        Raises ``InvalidVideo`` as ``FrameSource.probe`` does; blocking (run it in a thread).
        """
        ...

    def extract_segment(
        self, fetch: Fetch, size: int, name: str, segment: Segment, plan: SamplingPlan
    ) -> AsyncGenerator[ExtractedFrame, None]:
        """Yield the segment's sampled frames in frame_id order, off the event loop."""
        ...


class Detector(Protocol):
    """Finds objects in images (BGR, uint8, H x W x 3)."""

    @property
    def name(self) -> str: ...

    def detect(self, images: Sequence[Image]) -> list[list[Detection]]:
        """Return one list of detections per image, boxes in that image's pixels."""
        ...


class BoxTracker(Protocol):
    """Follows objects over one video's sampled frames, fed in frame order (one per video)."""

    def update(
        self, boxes: Sequence[Box], scores: Sequence[float], labels: Sequence[str]
    ) -> list[int | None]:
        """The next frame's objects; per object, the id of its track (None: not tracked).

        Objects only join tracks of their own label (class); a frame without objects is
        still fed, so that tracks not seen for a while end.
        """
        ...


#: Makes the tracker of one video (each video starts with no tracks).
TrackerFactory = Callable[[], BoxTracker]
