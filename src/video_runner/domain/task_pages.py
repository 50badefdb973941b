"""Where each published frame task is recorded: a few documents per video, found by their ``_id``.

The video path publishes one task per sampled frame. Their records (frame id, timestamp, size,
S3 key, and the Kafka partition and offset the task was stored at) are kept in *task pages* of
``TASKS_PER_PAGE`` frames by *ordinal*, the frame's rank among the sampled frames: page ``k``
holds ordinals ``k * TASKS_PER_PAGE`` to ``(k + 1) * TASKS_PER_PAGE - 1``. Ordinals are the same
on every redo of a video, so a redo replaces each page with the same frames; the number of pages
follows from ``total_frames``, so every reader (merge, reaper, retention) finds them all by
``_id`` alone, with no query whose cost grows with other events' documents.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

#: Frames per page: one page document is a few KB, and a 3-hour video has under 1,000 of them.
TASKS_PER_PAGE = 64


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """One published frame task, and where Kafka stored it."""

    frame_id: int
    timestamp_ms: int | None
    width: int | None
    height: int | None
    object_key: str
    partition: int
    offset: int
    #: How many times the reaper re-published this task (0: only the video path published it).
    attempt: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "frame_id": self.frame_id,
            "timestamp_ms": self.timestamp_ms,
            "width": self.width,
            "height": self.height,
            "object": self.object_key,
            "partition": self.partition,
            "offset": self.offset,
            "attempt": self.attempt,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskRecord:
        timestamp, width, height = data.get("timestamp_ms"), data.get("width"), data.get("height")
        return cls(
            frame_id=int(data["frame_id"]),
            timestamp_ms=None if timestamp is None else int(timestamp),
            width=None if width is None else int(width),
            height=None if height is None else int(height),
            object_key=str(data["object"]),
            partition=int(data["partition"]),
            offset=int(data["offset"]),
            attempt=int(data.get("attempt") or 0),
        )


@dataclass(frozen=True, slots=True)
class TaskPage:
    """The task records of ordinals ``[index * TASKS_PER_PAGE, (index + 1) * TASKS_PER_PAGE)``."""

    index: int
    bucket: str
    tasks: tuple[TaskRecord, ...]

    def frame_ids(self) -> list[int]:
        return [task.frame_id for task in self.tasks]

    def with_republished(self, moved: Mapping[int, TaskRecord]) -> TaskPage:
        """This page with the records of re-published frames (new offset, one more attempt)."""
        return replace(self, tasks=tuple(moved.get(t.frame_id, t) for t in self.tasks))


def task_page_of(ordinal: int) -> int:
    """The page that holds the sampled frame of rank ``ordinal``."""
    return ordinal // TASKS_PER_PAGE


def task_page_count(total_frames: int) -> int:
    """How many pages a video with ``total_frames`` sampled frames has."""
    return math.ceil(total_frames / TASKS_PER_PAGE)


class TaskPageAssembler:
    """Collects published tasks, in any order, into pages that are complete (pure bookkeeping).

    The video path adds each frame's record with its ordinal once its task is acknowledged; a
    page is handed out as soon as all its ordinals are in, and the last, shorter page when the
    video ends (``finish``).
    """

    def __init__(self, bucket: str) -> None:
        self._bucket = bucket
        self._open: dict[int, dict[int, TaskRecord]] = {}

    def add(self, ordinal: int, record: TaskRecord) -> TaskPage | None:
        index = task_page_of(ordinal)
        members = self._open.setdefault(index, {})
        members[ordinal] = record
        if len(members) < TASKS_PER_PAGE:
            return None
        del self._open[index]
        return self._chunk(index, members)

    def finish(self) -> Iterator[TaskPage]:
        """The pages still open (the last one is shorter), in order."""
        for index in sorted(self._open):
            yield self._chunk(index, self._open[index])
        self._open.clear()

    def _chunk(self, index: int, members: Mapping[int, TaskRecord]) -> TaskPage:
        return TaskPage(index, self._bucket, tuple(members[o] for o in sorted(members)))
