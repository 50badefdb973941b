"""Writes an event's merged JSON from the store: page by page, by ``_id``, in flat memory.

The two lists of the final JSON (``frames`` and its older twin ``prediction``) are written in
one pass over the task pages, each to a file of its own (``MergedFrames``), and the document is
assembled from them and the event's header at the end (``assemble``). Each frame's result is
read once, by ``_id`` (a task page's worth a lookup, the next page read while this one is
written), so the cost is the event's own frames, however many documents other events keep in
the store.

A merge may start before the event is ``predictable`` (``ResultsArriving``): a page whose
results are not all stored yet is waited for and re-read, so that by the time the last result
comes, every page but the last few is written, and the final JSON is an assembly of files.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections import Counter, deque
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from video_runner.domain.prediction import Prediction
from video_runner.domain.results import FrameResult, MergedJson, merged_header
from video_runner.domain.task_pages import TaskPage, TaskRecord
from video_runner.errors import DependencyUnavailable, MergeAbandoned
from video_runner.ports import PredictionStore
from video_runner.services.tracking import FrameTracking

log = logging.getLogger(__name__)

#: Task pages read ahead of the one being written (each a page lookup and a results lookup).
READ_AHEAD = 4


class ResultsArriving:
    """What a merge started before ``predictable`` waits with: a page whose results are not
    all stored is re-read every ``poll_s`` until they are, or until ``complete()`` says every
    result is in (then what is still missing is missing, as in a merge of a complete event).

    ``still_wanted`` answers whether the event can still become ``ready``; a merge whose
    event cannot is abandoned (``MergeAbandoned``).
    """

    def __init__(self, still_wanted: Callable[[], Awaitable[bool]], *, poll_s: float) -> None:
        self._still_wanted = still_wanted
        self._poll_s = poll_s
        self._complete = asyncio.Event()

    def complete(self) -> None:
        """Every result is stored (the event is ``predictable``): stop waiting for any."""
        self._complete.set()

    @property
    def is_complete(self) -> bool:
        return self._complete.is_set()

    async def wait(self) -> None:
        """One round of waiting: until the next re-read, or until ``complete()``."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._complete.wait(), self._poll_s)
        if not self._complete.is_set() and not await self._still_wanted():
            raise MergeAbandoned


@dataclass(frozen=True, slots=True)
class MergedSummary:
    """What a written final JSON holds: its frames, and the detectors that answered them."""

    frames: int
    models: list[str]
    #: Tracks linked (0 when the video was not tracked).
    tracks: int = 0


async def _read_page(
    store: PredictionStore, event_id: str, index: int, arriving: ResultsArriving | None
) -> tuple[TaskPage, dict[int, FrameResult]]:
    page = await store.read_task_page(event_id, index)
    if page is None:
        # Written before total_frames was set, so a store that lost it is not ready yet.
        raise DependencyUnavailable("mongodb", f"task page {index} of {event_id} missing")
    results = await store.results_of(event_id, page.frame_ids())
    if arriving is not None:
        while missing := [f for f in page.frame_ids() if f not in results]:
            if arriving.is_complete:
                break
            await arriving.wait()
            # After complete() too: the results stored just before it are read once more.
            results.update(await store.results_of(event_id, missing))
    return page, results


async def _pages_with_results(
    store: PredictionStore, event_id: str, count: int, arriving: ResultsArriving | None
) -> AsyncGenerator[tuple[TaskPage, dict[int, FrameResult]], None]:
    """The event's task pages in order, each with its stored results, ``READ_AHEAD`` pages
    read ahead: the store answers the next pages while this process writes the current one
    (a 54,000-frame merge spent half its time waiting on the store with one page ahead)."""
    ahead: deque[asyncio.Future[tuple[TaskPage, dict[int, FrameResult]]]] = deque()
    following = 0
    try:
        for _ in range(count):
            while following < count and len(ahead) <= READ_AHEAD:
                ahead.append(
                    asyncio.ensure_future(_read_page(store, event_id, following, arriving))
                )
                following += 1
            yield await ahead.popleft()
    finally:
        for pending in ahead:
            pending.cancel()
        for pending in ahead:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pending


class MergedFrames:
    """The two lists of one event's final JSON, written to two files in ``folder``, and what
    the document's end says of them (models, tracks); ``assemble`` makes the document."""

    def __init__(self, folder: Path) -> None:
        self.frames_path = folder / "frames.part"
        self.legacy_path = folder / "prediction.part"
        # The header is the event's at the end (its failed frames are counted by then): the
        # lists are written without it, and the writers' element separators do not need it.
        self._frames_part, self._legacy_part = MergedJson({}), MergedJson({})
        self.classes: Counter[str] = Counter()
        self.frames = 0
        self.tracks: list[dict[str, Any]] | None = None

    @property
    def models(self) -> list[str]:
        return self._frames_part.models

    async def write(
        self,
        store: PredictionStore,
        prediction: Prediction,
        tracking: FrameTracking | None = None,
        arriving: ResultsArriving | None = None,
    ) -> None:
        """Write every frame of ``prediction``'s task pages, sorted by frame_id."""
        event_id = prediction.event_id
        pages = _pages_with_results(store, event_id, prediction.task_pages, arriving)
        # Closed on the way out, whatever raised: its read ahead is never left running.
        async with contextlib.aclosing(pages):
            with (
                self.frames_path.open("w", encoding="utf-8") as out,
                self.legacy_path.open("w", encoding="utf-8") as legacy,
            ):
                async for page, results in pages:
                    merged = [_merged_frame(event_id, task, results) for task in page.tasks]
                    if tracking is not None:
                        merged = await asyncio.to_thread(tracking.link, merged)
                    for result in merged:
                        out.write(self._frames_part.frame(result))
                        self.classes.update(str(o.get("class", "?")) for o in result.objects)
                        legacy.write(self._legacy_part.legacy(result))
                        self.frames += 1
        self.tracks = None if tracking is None else tracking.summaries()

    def assemble(self, prediction: Prediction, path: Path) -> MergedSummary:
        """Write the final JSON of ``prediction`` (its document as it is now) to ``path``."""
        with path.open("w", encoding="utf-8") as out:
            out.write(MergedJson(merged_header(prediction.document)).head())
            with self.frames_path.open(encoding="utf-8") as frames:
                shutil.copyfileobj(frames, out)
            out.write(self._frames_part.middle())
            with self.legacy_path.open(encoding="utf-8") as legacy:
                shutil.copyfileobj(legacy, out)
            tracks = self.tracks
            out.write(self._frames_part.tail(None if tracks is None else {"tracks": tracks}))
        return MergedSummary(frames=self.frames, models=self.models, tracks=len(tracks or ()))


def _merged_frame(event_id: str, task: TaskRecord, results: dict[int, FrameResult]) -> FrameResult:
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
    return FrameResult(
        frame_id=task.frame_id,
        timestamp_ms=timestamp,
        objects=[] if stored is None else stored.objects,
        error="no result stored" if stored is None else stored.error,
        model=None if stored is None else stored.model,
    )


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
    parts = path.with_name(path.name + ".parts")
    parts.mkdir()
    try:
        merged = MergedFrames(parts)
        await merged.write(store, prediction, tracking)
        # Copies two files of up to tens of MB: off the event loop.
        summary = await asyncio.to_thread(merged.assemble, prediction, path)
    finally:
        shutil.rmtree(parts, ignore_errors=True)
    if classes is not None:
        classes.update(merged.classes)
    return summary
