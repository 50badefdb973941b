"""Lost or queued: which overdue frames the reaper may re-publish (pure, no Kafka, no store).

A frame task without a result is *lost* only once the inference workers' consumer group has
committed past the task's offset: it was consumed, and its result never came. A task the group
has not reached yet is merely *queued* behind other work and is never re-published or failed for
the time it waits (a backlog is not a fault). Each re-publication moves the task to a new offset
and counts one attempt on the frame; a frame lost again after ``max_attempts`` fails the event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from video_runner.domain.chunks import TaskRecord


@dataclass(frozen=True, slots=True)
class ReapPlan:
    """What to do with an event's frames that have no result."""

    republish: tuple[TaskRecord, ...]
    exhausted: tuple[TaskRecord, ...]
    queued: int

    @property
    def fails_event(self) -> bool:
        return bool(self.exhausted)


def is_consumed(task: TaskRecord, committed: Mapping[int, int]) -> bool:
    """Whether the group committed past the task (committed offsets are the *next* to read)."""
    return committed.get(task.partition, 0) > task.offset


def plan_reaping(
    missing: Sequence[TaskRecord], committed: Mapping[int, int], max_attempts: int
) -> ReapPlan:
    republish: list[TaskRecord] = []
    exhausted: list[TaskRecord] = []
    queued = 0
    for task in missing:
        if not is_consumed(task, committed):
            queued += 1
        elif task.attempt >= max_attempts:
            exhausted.append(task)
        else:
            republish.append(task)
    return ReapPlan(tuple(republish), tuple(exhausted), queued)


def grace_s(deadline_s: float, attempt: int) -> float:
    """How long a consumed frame may stay without a result: doubling with each attempt."""
    return deadline_s * (1 << min(max(attempt, 0), 16))


def current_round(missing: Sequence[TaskRecord]) -> int:
    """The reaper round an event is in: the most attempts any of its missing frames had."""
    return max((task.attempt for task in missing), default=0)
