"""Writes an event's merged JSON from the store: page by page, by ``_id``, in flat memory.

The two lists of the final JSON (``frames`` and its older twin ``prediction``) are written in
one pass over the task pages: ``frames`` straight to the output, ``prediction`` to a side file
appended at the end. Each frame's result is read once, by ``_id`` (a task page's worth a
lookup, the next page read while this one is written), so the cost is the event's own frames,
however many documents other events keep in the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections import Counter
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path

from video_runner.domain.prediction import Prediction
from video_runner.domain.results import FrameResult, MergedJson, merged_header
from video_runner.domain.task_pages import TaskPage
from video_runner.errors import DependencyUnavailable
from video_runner.ports import PredictionStore
from video_runner.services.tracking import FrameTracking

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MergedSummary:
    """What a written final JSON holds: its frames, and the detectors that answered them."""

    frames: int
    models: list[str]
    #: Tracks linked (0 when the video was not tracked).
    tracks: int = 0


async def _read_page(
    store: PredictionStore, event_id: str, index: int
) -> tuple[TaskPage, dict[int, FrameResult]]:
    page = await store.read_task_page(event_id, index)
    if page is None:
        # Written before total_frames was set, so a store that lost it is not ready yet.
        raise DependencyUnavailable("mongodb", f"task page {index} of {event_id} missing")
    return page, await store.results_of(event_id, page.frame_ids())


async def _pages_with_results(
    store: PredictionStore, event_id: str, count: int
) -> AsyncGenerator[tuple[TaskPage, dict[int, FrameResult]], None]:
    """The event's task pages in order, each with its stored results, one page read ahead:
    the store answers the next page while this process writes the current one."""
    if count == 0:
        return
    ahead = asyncio.ensure_future(_read_page(store, event_id, 0))
    try:
        for index in range(count):
            current = await ahead
            if index + 1 < count:
                ahead = asyncio.ensure_future(_read_page(store, event_id, index + 1))
            yield current
    finally:
        if not ahead.done():
            ahead.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await ahead


async def write_merged(
    store: PredictionStore,
    prediction: Prediction,
    path: Path,
    classes: Counter[str] | None = None,
    tracking: FrameTracking | None = None,
) -> MergedSummary:
    """Write the final JSON of ``prediction``'s event to ``path``; returns what it holds.

    ``classes``, when given, counts the written objects per class (the completion notice's).
    ``tracking``, when given, links the objects into tracks as the frames go by: each tracked
    object gets its ``track_id`` and the JSON ends with the summary of every track.
    """
    event_id = prediction.event_id
    header = merged_header(prediction.document)
    frames_part, legacy_part = MergedJson(header), MergedJson(header)
    side = path.with_name(path.name + ".prediction")
    frames = 0
    pages = _pages_with_results(store, event_id, prediction.task_pages)
    # Closed on the way out, whatever raised: its read ahead is never left running.
    async with contextlib.aclosing(pages):
        with path.open("w", encoding="utf-8") as out, side.open("w+", encoding="utf-8") as legacy:
            out.write(frames_part.head())
            async for page, results in pages:
                merged: list[FrameResult] = []
                for task in page.tasks:
                    stored = results.get(task.frame_id)
                    if stored is None:
                        log.error(
                            "frame without a stored result in a complete event",
                            extra={"event_id": event_id, "frame_id": task.frame_id},
                        )
                    # The task's timestamp is the runner's own measure; a result only echoes it.
                    timestamp = task.timestamp_ms
                    if timestamp is None and stored is not None:
                        timestamp = stored.timestamp_ms
                    merged.append(
                        FrameResult(
                            frame_id=task.frame_id,
                            timestamp_ms=timestamp,
                            objects=[] if stored is None else stored.objects,
                            error="no result stored" if stored is None else stored.error,
                            model=None if stored is None else stored.model,
                        )
                    )
                if tracking is not None:
                    merged = await asyncio.to_thread(tracking.link, merged)
                for result in merged:
                    out.write(frames_part.frame(result))
                    if classes is not None:
                        classes.update(str(obj.get("class", "?")) for obj in result.objects)
                    legacy.write(legacy_part.legacy(result))
                    frames += 1
            out.write(frames_part.middle())
            legacy.seek(0)
            shutil.copyfileobj(legacy, out)
            tracks = None if tracking is None else tracking.summaries()
            out.write(frames_part.tail(None if tracks is None else {"tracks": tracks}))
    side.unlink(missing_ok=True)
    return MergedSummary(frames=frames, models=frames_part.models, tracks=len(tracks or ()))
