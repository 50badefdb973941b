"""Reading what the system found, for people: the dashboard and ``video-runner render``.

Everything goes through the ports and the client service, never another service's internals:
a ``ready`` event's detections come from its final JSON in S3 (its per-frame documents are
purged after ``ready`` by default); an event still in flight, or failed, from its task pages
and stored results, by ``_id``. The frames themselves stay in the frames bucket.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from video_runner.domain.detection_summary import class_counts, class_timeline
from video_runner.domain.ids import frame_key
from video_runner.domain.results import FrameResult
from video_runner.domain.status import Status
from video_runner.domain.task_pages import TASKS_PER_PAGE, TaskRecord
from video_runner.errors import SourceMissing
from video_runner.ports import ObjectStore, PredictionStore
from video_runner.services.client_actions import read_result, status_of
from video_runner.services.paging import find_all

#: Ready events whose detections are kept in memory: their final JSON never changes.
READY_CACHE_EVENTS = 8
#: Ready events whose counts per class are kept: a few bytes each, read on every list refresh.
COUNTS_CACHE_EVENTS = 1000
#: Events whose summary (classes, timeline, frame ids) is kept, each until the event changes.
SUMMARY_CACHE_EVENTS = 256
#: Classes a summary keeps by name (the most frequent); the others are only counted.
SUMMARY_CLASSES = 20
#: Slices of the video in a summary's per-class timeline.
TIMELINE_BINS = 100
#: A scan of one status stops after this many documents (``find`` is a scan; see ``recent``).
SCAN_CAP = 1000
_EPOCH = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class FrameDetections:
    """One sampled frame as the dashboard shows it; ``done`` is False while it awaits a result."""

    frame_id: int
    timestamp_ms: int | None
    objects: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    done: bool = True


@dataclass(frozen=True, slots=True)
class Summary:
    """What a page shows of a whole event, bounded whatever the event holds: the
    ``SUMMARY_CLASSES`` most frequent classes (and how many others), their timeline, and the
    ids of the sampled frames known so far (for paging)."""

    classes: dict[str, int]
    more_classes: int
    timeline: dict[str, list[int]]
    frame_ids: list[int]


class DetectionReader:
    """Reads events, their frames' detections and their JPEGs; caches ready events' results."""

    def __init__(self, store: PredictionStore, objects: ObjectStore, frames_bucket: str) -> None:
        self.store = store
        self.objects = objects
        self.frames_bucket = frames_bucket
        self._ready: OrderedDict[str, dict[int, FrameDetections]] = OrderedDict()
        self._ready_lock = asyncio.Lock()
        self._summaries: OrderedDict[str, tuple[tuple[object, ...], Summary]] = OrderedDict()

    async def event(self, event_id: str) -> dict[str, Any] | None:
        """The event's document with live counts (``status_of``), or None if unknown."""
        return await status_of(self.store, event_id)

    async def recent(self, per_status: int = 50) -> list[dict[str, Any]]:
        """The most recently created events, at most ``per_status`` of each status, newest first.

        ``find`` pages by ``_id`` (a scan without a secondary index): each status is read
        at most ``SCAN_CAP`` documents deep, which is plenty for a dashboard and bounded for
        a store that holds years of events. Processing events get their live counts.
        """
        found: list[dict[str, Any]] = []
        for status in Status:
            documents = await self._scan(status)
            documents.sort(key=_created, reverse=True)
            found.extend(documents[:per_status])
        live = await asyncio.gather(
            *(self._live(document) for document in found), return_exceptions=False
        )
        return sorted(live, key=_created, reverse=True)

    async def _scan(self, status: Status) -> list[dict[str, Any]]:
        return [p.as_document() for p in await find_all(self.store, status, cap=SCAN_CAP)]

    async def _live(self, document: dict[str, Any]) -> dict[str, Any]:
        if document.get("status") != Status.PROCESSING.value:
            return document
        return await status_of(self.store, str(document["_id"])) or document

    async def frames(self, document: Mapping[str, Any]) -> list[FrameDetections]:
        """Every sampled frame known so far, by frame id, with its detections if it has them."""
        if document.get("status") == Status.READY.value:
            return list((await self._ready_frames(document)).values())
        return [frame async for frame in self._stored_frames(str(document["_id"]))]

    async def summary(self, document: Mapping[str, Any]) -> Summary:
        """The event's summary, computed once per change of the event (not once per view)."""
        event_id = str(document["_id"])
        version = _version(document)
        cached = self._summaries.get(event_id)
        if cached is not None and cached[0] == version:
            self._summaries.move_to_end(event_id)
            return cached[1]
        frames = await self.frames(document)
        pairs = [(f.frame_id, f.objects) for f in frames]
        counts = class_counts(pairs)
        top = dict(list(counts.items())[:SUMMARY_CLASSES])
        span = int((document.get("video") or {}).get("frame_count") or 0)
        span = max(span, max((f.frame_id + 1 for f in frames), default=1))
        timeline = class_timeline(pairs, span, min(TIMELINE_BINS, max(len(frames), 1)))
        summary = Summary(
            classes=top,
            more_classes=len(counts) - len(top),
            timeline={name: timeline[name] for name in top},
            frame_ids=sorted(f.frame_id for f in frames),
        )
        self._summaries[event_id] = (version, summary)
        while len(self._summaries) > SUMMARY_CACHE_EVENTS:
            self._summaries.popitem(last=False)
        return summary

    async def frames_page(
        self, document: Mapping[str, Any], page: int, size: int
    ) -> list[FrameDetections]:
        """The ``page``-th run of ``size`` sampled frames (from 0), in frame order."""
        first = page * size
        if document.get("status") == Status.READY.value:
            ready = await self._ready_frames(document)
            return [ready[i] for i in sorted(ready)[first : first + size]]
        # Task page k holds the frames of rank 64k..64k+63: read only those this page shows.
        event_id = str(document["_id"])
        shown: list[FrameDetections] = []
        for index in range(first // TASKS_PER_PAGE, (first + size - 1) // TASKS_PER_PAGE + 1):
            records = await self.store.read_task_page(event_id, index)
            if records is None:
                break
            ranks = range(index * TASKS_PER_PAGE, index * TASKS_PER_PAGE + len(records.tasks))
            tasks = [
                t for r, t in zip(ranks, records.tasks, strict=True) if first <= r < first + size
            ]
            results = await self.store.results_of(event_id, [t.frame_id for t in tasks])
            shown.extend(_frame(task, results.get(task.frame_id)) for task in tasks)
        return shown

    async def objects_of(self, document: Mapping[str, Any], frame_id: int) -> list[dict[str, Any]]:
        """The detections of one frame ([] when it has none, or none yet)."""
        if document.get("status") == Status.READY.value:
            frame = (await self._ready_frames(document)).get(frame_id)
            return [] if frame is None else frame.objects
        found = await self.store.results_of(str(document["_id"]), [frame_id])
        result = found.get(frame_id)
        return [] if result is None else list(result.objects)

    async def final_json(self, document: Mapping[str, Any]) -> bytes:
        """The final JSON of a ready event, as stored in S3."""
        return await read_result(self.objects, document)

    async def frame_jpeg(self, event_id: str, frame_id: int) -> bytes | None:
        """The stored JPEG of a sampled frame, or None if there is none."""
        try:
            return await self.objects.get_bytes(self.frames_bucket, frame_key(event_id, frame_id))
        except SourceMissing:
            return None

    async def _ready_frames(self, document: Mapping[str, Any]) -> dict[int, FrameDetections]:
        event_id = str(document["_id"])
        async with self._ready_lock:
            cached = self._ready.get(event_id)
            if cached is not None:
                self._ready.move_to_end(event_id)
                return cached
            parsed = json.loads(await self.final_json(document))
            frames = {
                int(entry["frame_id"]): FrameDetections(
                    frame_id=int(entry["frame_id"]),
                    timestamp_ms=entry.get("timestamp_ms"),
                    objects=list(entry.get("objects") or []),
                    error=entry.get("error"),
                )
                for entry in parsed.get("frames") or []
            }
            self._ready[event_id] = frames
            while len(self._ready) > READY_CACHE_EVENTS:
                self._ready.popitem(last=False)
            return frames

    async def _stored_frames(self, event_id: str) -> AsyncIterator[FrameDetections]:
        # Pages are numbered from 0 and written in order of completion: the first missing
        # one ends what has been published so far (all of them once total_frames is set).
        index = 0
        while (records := await self.store.read_task_page(event_id, index)) is not None:
            results = await self.store.results_of(event_id, records.frame_ids())
            for task in records.tasks:
                yield _frame(task, results.get(task.frame_id))
            index += 1


def _frame(task: TaskRecord, result: FrameResult | None) -> FrameDetections:
    return FrameDetections(
        frame_id=task.frame_id,
        timestamp_ms=task.timestamp_ms,
        objects=[] if result is None else list(result.objects),
        error=None if result is None else result.error,
        done=result is not None,
    )


def _version(document: Mapping[str, Any]) -> tuple[object, ...]:
    """What changes whenever what a summary shows may change."""
    return tuple(
        document.get(name)
        for name in (
            "status",
            "results_received",
            "failed_frames",
            "frames_published",
            "total_frames",
        )
    )


def _created(document: Mapping[str, Any]) -> datetime:
    value = document.get("created_at")
    if not isinstance(value, datetime):
        return _EPOCH
    # MongoDB hands back naive UTC datetimes unless asked otherwise; compare them as UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
