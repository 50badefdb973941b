"""Frames in, tasks out: upload each sampled frame's JPEG, then publish its task, as one bounded
pipeline (the video path and each segment of a long video run it alike)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from video_runner.domain.ids import frame_key
from video_runner.domain.video import ExtractedFrame
from video_runner.errors import most_telling
from video_runner.ports import ObjectStore, Telemetry
from video_runner.services.task_publication import DONE, Publication

#: Tasks per Kafka batch (a fixed tuning, not a setting).
PUBLISH_BATCH = 32


@dataclass(frozen=True, slots=True)
class FrameUpload:
    """Where frames go, and how many uploads overlap (``UPLOAD_CONCURRENCY``)."""

    frames_bucket: str
    upload_concurrency: int
    #: How long a batch of tasks waits for more uploaded frames (``PUBLISH_LINGER_MS``).
    publish_linger_s: float
    #: Tasks per Kafka batch: uploaded frames wait for at most two batches' worth.
    publish_batch: int = PUBLISH_BATCH


async def upload_and_publish(
    config: FrameUpload,
    event_id: str,
    frames: AsyncGenerator[ExtractedFrame, None],
    publication: Publication,
    *,
    objects: ObjectStore,
    telemetry: Telemetry,
) -> int:
    """Upload every frame of ``frames`` (closed at the end) not recorded before, publish their
    tasks in batches; returns how many frames are published (recorded ones included).

    The first error stops everything and is raised (the most telling of several)."""
    uploaded: asyncio.Queue[ExtractedFrame | None] = asyncio.Queue(maxsize=config.publish_batch * 2)
    slots = asyncio.Semaphore(config.upload_concurrency)

    async def upload(frame: ExtractedFrame) -> None:
        try:
            started = time.monotonic()
            await objects.put_bytes(
                config.frames_bucket, frame_key(event_id, frame.frame_id), frame.jpeg, "image/jpeg"
            )
            telemetry.observe("stage_seconds", time.monotonic() - started, stage="upload")
            await uploaded.put(frame)
        finally:
            slots.release()

    try:
        async with asyncio.TaskGroup() as group:
            publisher = group.create_task(publication.drain(uploaded))
            uploads: list[asyncio.Task[None]] = []
            async with contextlib.aclosing(frames):
                async for frame in frames:
                    if not publication.extracted(frame):
                        continue  # recorded by an earlier run: uploaded and published
                    await slots.acquire()
                    uploads.append(group.create_task(upload(frame)))
                    uploads = [task for task in uploads if not task.done()]
            await asyncio.gather(*uploads)
            await uploaded.put(DONE)
            await publisher
    except BaseExceptionGroup as group_error:
        raise most_telling(group_error) from None
    return publication.published
