"""The whole pipeline in one process, with no servers: what ``video-runner process`` runs.

It is the services' own code on another plumbing: the same frame source, the same JPEG bytes
decoded again (so the detector sees exactly what an inference worker reads from S3), the same
batching detector and the same merge, hence the same final JSON shape and detections.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from video_runner.contracts.options import EventOptions
from video_runner.domain.detections import keep_wanted
from video_runner.domain.params import Preprocessing, Sampling
from video_runner.domain.preprocess import decode_jpeg
from video_runner.domain.results import (
    FrameResult,
    merged_document,
    merged_header,
    sorted_frames,
)
from video_runner.domain.video import ExtractedFrame
from video_runner.ports import FrameSource, TrackerFactory
from video_runner.services.inference import BatchingDetector
from video_runner.services.tracking import FrameTracking


async def process_locally(
    video: Path,
    *,
    event_id: str,
    frames: FrameSource,
    detector: BatchingDetector,
    sampling: Sampling,
    preprocessing: Preprocessing,
    concurrency: int = 8,
    options: EventOptions | None = None,
    trackers: TrackerFactory | None = None,
) -> dict[str, Any]:
    """Extract, detect and merge ``video``; returns the final JSON as a dict.

    ``options`` are an event's (sampling, classes, confidence floor, tag), applied as the
    runner and the inference workers apply them. With ``trackers``, the objects are linked into
    tracks, as the outbox-S3 worker links a tracked event's.
    """
    options = options or EventOptions()
    plan = options.sampling(sampling.every_n)
    info = await asyncio.to_thread(frames.probe, video)
    slots = asyncio.Semaphore(concurrency)
    results: list[FrameResult] = []

    async def detect(frame: ExtractedFrame) -> None:
        try:
            image = await asyncio.to_thread(decode_jpeg, frame.jpeg)
            detections = await detector.detect(image)
            results.append(
                FrameResult(
                    frame_id=frame.frame_id,
                    timestamp_ms=frame.timestamp_ms,
                    objects=keep_wanted(
                        [d.as_dict() for d in detections], options.classes, options.min_confidence
                    ),
                    model=detector.name,
                )
            )
        finally:
            slots.release()

    async with (
        asyncio.TaskGroup() as group,
        contextlib.aclosing(frames.extract(video, plan)) as stream,
    ):
        async for frame in stream:
            await slots.acquire()
            group.create_task(detect(frame))
    document = {
        "_id": event_id,
        "source": {"file": video.name},
        "video": info.as_dict(),
        "sampling": plan.as_dict(),
        "options": options.as_document(),
        "preprocessing": preprocessing.as_dict(),
        "total_frames": len(results),
        "failed_frames": 0,
    }
    header = merged_header(document)
    if trackers is None:
        return merged_document(header, results)
    tracking = FrameTracking(trackers)
    linked = await asyncio.to_thread(tracking.link, sorted_frames(results))
    return merged_document(header, linked, {"tracks": tracking.summaries()})
