"""One video's frame tasks on their way out of the video path: batches, ordinals, page records.

The tasks carry the event's inference options (``classes``, ``min_confidence``), so that every
inference worker applies them without reading the event.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from video_runner.contracts import InferenceTask, VideoEvent
from video_runner.domain.ids import frame_key, task_key
from video_runner.domain.segments import Segment
from video_runner.domain.task_pages import TASKS_PER_PAGE, TaskPageAssembler, TaskRecord
from video_runner.domain.video import ExtractedFrame
from video_runner.ports import Delivery, PredictionStore, RawPublisher, Telemetry

#: The end marker of the queue of uploaded frames.
DONE = None
#: How often ``frames_published`` is written while a video is published.
PROGRESS_EVERY_S = 1.0


@dataclass(frozen=True, slots=True)
class PublishTo:
    """Where a video's frames and tasks go, and how tasks are batched."""

    frames_bucket: str
    tasks_topic: str
    #: At most this many tasks in one batch.
    publish_batch: int
    #: A batch waits this long after its first frame for more, unless it fills up first.
    linger_s: float
    #: The document's field that shows how many are published (None: not written, for a
    #: segment: runners of other segments write the same document meanwhile).
    progress_field: str | None = "frames_published"


class Publication:
    """One video's frame tasks on their way out: batches, ordinals, page records, the count.

    Records come after the acknowledgements (they carry each task's offset, which the reaper
    compares with what the inference workers consumed). A crash in between loses nothing: the
    event is not committed, so it is redone, and the redo writes the same pages.
    """

    def __init__(
        self,
        config: PublishTo,
        event: VideoEvent,
        *,
        store: PredictionStore,
        publisher: RawPublisher,
        telemetry: Telemetry,
        segment: Segment | None = None,
    ) -> None:
        """``segment``: publish that segment of the video only (its frames' ordinals start at
        its ``first_ordinal``, and it resumes from the pages of its own ordinals)."""
        self._config = config
        self._segment = segment
        self._event_id = event.event_id
        self._options = event.options
        self._store = store
        self._publisher = publisher
        self._telemetry = telemetry
        self._ordinals: dict[int, int] = {}
        self._task_pages = TaskPageAssembler(config.frames_bucket)
        self._progress_written = 0.0
        self._recorded: set[int] = set()
        self.published = 0

    async def resume(self) -> None:
        """Read the pages an earlier run of this event recorded (a crash, a rebalance, a
        retried error): their frames were uploaded and their tasks acknowledged already.

        Pages complete nearly in order (uploads overlap by a few frames), so the run of them
        from page 0 is read; a page after a gap is redone, which is harmless.
        """
        segment = self._segment
        if segment is None:
            index = 0
            while (page := await self._store.read_task_page(self._event_id, index)) is not None:
                self._recorded.update(page.frame_ids())
                index += 1
        elif segment.selected:
            # Its whole pages are its own documents; the pages it shares with the segments
            # beside it are in its segment document, written once it was done.
            for index in whole_pages(segment):
                page = await self._store.read_task_page(self._event_id, index)
                if page is not None:
                    self._recorded.update(page.frame_ids())
            shared = await self._store.read_segment_pages(self._event_id, segment.index)
            for page in shared:
                self._recorded.update(page.frame_ids())
        if self._recorded:
            self._telemetry.count("frames_resumed", len(self._recorded))

    def extracted(self, frame: ExtractedFrame) -> bool:
        """Note a frame's rank among the sampled frames, in decoding order; False when an
        earlier run recorded it already (it counts as published, and is not sent again)."""
        first = 0 if self._segment is None else self._segment.first_ordinal
        self._ordinals[frame.frame_id] = first + len(self._ordinals)
        self._telemetry.count("frames_extracted")
        if frame.frame_id in self._recorded:
            self.published += 1
            return False
        return True

    async def drain(self, uploaded: asyncio.Queue[ExtractedFrame | None]) -> None:
        """Publish uploaded frames in batches until the end marker, then the last pages.

        A batch is sent when it is full, when its first frame has waited ``linger_s``, or at
        the end marker, whichever comes first."""
        config, store = self._config, self._store
        batches = TaskBatches(uploaded, config.publish_batch, config.linger_s)
        try:
            while (batch := await batches.next()) is not None:
                await self._publish(batch)
                # Progress is for people: once a second is enough, and a write per batch would
                # make the store the pace of the whole pipeline (the total is written at the end).
                now = time.monotonic()
                field = config.progress_field
                if field is not None and now - self._progress_written >= PROGRESS_EVERY_S:
                    self._progress_written = now
                    await store.update_processing(self._event_id, {field: self.published})
        finally:
            batches.close()
        last = list(self._task_pages.finish())
        if self._segment is None:
            for page in last:
                await store.record_task_page(self._event_id, page)
        else:
            # Pages the segments beside it hold frames of too: the segment's own document.
            await store.record_segment_pages(self._event_id, self._segment.index, last)

    async def _publish(self, frames: list[ExtractedFrame]) -> None:
        config, event_id = self._config, self._event_id
        tasks = [
            InferenceTask(
                event_id=event_id,
                frame_id=f.frame_id,
                bucket=config.frames_bucket,
                object_key=frame_key(event_id, f.frame_id),
                timestamp_ms=f.timestamp_ms,
                width=f.width,
                height=f.height,
                attempt=0,
                classes=None if self._options.classes is None else tuple(self._options.classes),
                min_confidence=self._options.min_confidence,
            )
            for f in frames
        ]
        started = time.monotonic()
        deliveries = await self._publisher.publish_many(
            config.tasks_topic, [(task_key(event_id, t.frame_id), t.as_message()) for t in tasks]
        )
        telemetry = self._telemetry
        telemetry.observe("stage_seconds", time.monotonic() - started, stage="publish")
        telemetry.count("frames_published", len(tasks))
        self.published += len(tasks)
        for task, delivery in zip(tasks, deliveries, strict=True):
            record = task_record(task, delivery)
            page = self._task_pages.add(self._ordinals[task.frame_id], record)
            if page is not None:
                await self._store.record_task_page(event_id, page)


class TaskBatches:
    """Batches of a queue of uploaded frames: full ones, or what came within ``linger_s`` of
    a batch's first frame; None after the end marker."""

    def __init__(
        self, queue: asyncio.Queue[ExtractedFrame | None], size: int, linger_s: float
    ) -> None:
        self._queue, self._size, self._linger_s = queue, size, linger_s
        # A get still waiting when a batch's time was up: the next batch starts with its item,
        # so nothing taken from the queue is dropped.
        self._getting: asyncio.Future[ExtractedFrame | None] | None = None
        self._ended = False

    async def next(self) -> list[ExtractedFrame] | None:
        batch: list[ExtractedFrame] = []
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        while not self._ended and len(batch) < self._size:
            if self._getting is None and not self._queue.empty():
                item = self._queue.get_nowait()
            else:
                if self._getting is None:
                    self._getting = asyncio.ensure_future(self._queue.get())
                timeout = None if deadline is None else max(0.0, deadline - loop.time())
                done, _ = await asyncio.wait({self._getting}, timeout=timeout)
                if not done:
                    break
                item, self._getting = self._getting.result(), None
            if item is DONE:
                self._ended = True
            else:
                batch.append(item)
                if deadline is None:
                    deadline = loop.time() + self._linger_s
        return batch or None

    def close(self) -> None:
        if self._getting is not None:
            self._getting.cancel()


def whole_pages(segment: Segment) -> range:
    """The task pages that hold only frames of ``segment``: it writes them itself."""
    first = segment.first_ordinal
    end = first + len(segment.selected)
    return range(-(-first // TASKS_PER_PAGE), end // TASKS_PER_PAGE)


def task_record(task: InferenceTask, delivery: Delivery) -> TaskRecord:
    """The record of a published task: what it asks for, and where the broker stored it."""
    return TaskRecord(
        frame_id=task.frame_id,
        timestamp_ms=task.timestamp_ms,
        width=task.width,
        height=task.height,
        object_key=task.object_key,
        partition=delivery.partition,
        offset=delivery.offset,
    )
