"""An annotated video: the sampled frames, with their detections drawn, one after the other.

The frames come from wherever they are (the frames bucket for an event, a fresh extraction for
``process --annotate``); the encoder is a ``FrameSink`` the entrypoint plugs in (PyAV in
production). Decoding, drawing and encoding are CPU work and run off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Protocol

from video_runner.domain.annotate import Image, draw_detections
from video_runner.domain.preprocess import decode_jpeg
from video_runner.errors import PermanentError
from video_runner.services.detection_reads import DetectionReader

#: JPEG downloads kept in flight ahead of the encoder, so S3's latency hides behind the CPU work.
LOOKAHEAD = 8


class FrameSink(Protocol):
    """Takes annotated frames in order (BGR, uint8); ``close`` finishes the file."""

    def write(self, image: Image) -> None: ...

    def close(self) -> None: ...


async def render_annotated(
    jpegs: AsyncIterator[tuple[int, bytes]],
    objects: Mapping[int, Sequence[Mapping[str, Any]]],
    sink: FrameSink,
    on_frame: Callable[[], None] | None = None,
) -> int:
    """Decode each JPEG, draw its frame's ``objects``, hand it to ``sink``; returns the count."""

    def annotate_and_write(data: bytes, frame_objects: Sequence[Mapping[str, Any]]) -> None:
        sink.write(draw_detections(decode_jpeg(data), frame_objects))

    written = 0
    async for frame_id, data in jpegs:
        await asyncio.to_thread(annotate_and_write, data, objects.get(frame_id, ()))
        written += 1
        if on_frame is not None:
            on_frame()
    return written


async def stored_jpegs(
    reader: DetectionReader, event_id: str, frame_ids: Sequence[int]
) -> AsyncIterator[tuple[int, bytes]]:
    """The stored JPEGs of ``frame_ids``, in that order, a few downloads ahead.

    A missing frame is an error: a video that silently skips frames would lie about time.
    """
    pending: list[tuple[int, asyncio.Task[bytes | None]]] = []
    ids = iter(frame_ids)
    try:
        while True:
            while len(pending) < LOOKAHEAD and (frame_id := next(ids, None)) is not None:
                task = asyncio.create_task(reader.frame_jpeg(event_id, frame_id))
                pending.append((frame_id, task))
            if not pending:
                return
            frame_id, task = pending.pop(0)
            data = await task
            if data is None:
                raise PermanentError(
                    f"frame {frame_id} of event {event_id} is not in bucket {reader.frames_bucket}"
                )
            yield frame_id, data
    finally:
        for _, task in pending:
            task.cancel()
        for _, task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
