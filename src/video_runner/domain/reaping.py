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

from video_runner.domain.task_pages import TaskRecord


@dataclass(frozen=True, slots=True)
class ReapPlan:
    """What to do with an event's consumed frames that have no result."""

    republish: tuple[TaskRecord, ...]
    exhausted: tuple[TaskRecord, ...]

    @property
    def fails_event(self) -> bool:
        return bool(self.exhausted)


def is_consumed(task: TaskRecord, committed: Mapping[int, int]) -> bool:
    """Whether the group committed past the task (committed offsets are the *next* to read)."""
    return committed.get(task.partition, 0) > task.offset


def plan_reaping(lost: Sequence[TaskRecord], max_attempts: int) -> ReapPlan:
    """Re-publish each lost task (consumed, no result) until it has had ``max_attempts``."""
    return ReapPlan(
        republish=tuple(task for task in lost if task.attempt < max_attempts),
        exhausted=tuple(task for task in lost if task.attempt >= max_attempts),
    )


def grace_s(deadline_s: float, attempt: int) -> float:
    """How long a consumed frame may stay without a result: doubling with each attempt."""
    return deadline_s * (1 << min(max(attempt, 0), 16))


def current_round(missing: Sequence[TaskRecord]) -> int:
    """The reaper round an event is in: the most attempts any of its missing frames had."""
    return max((task.attempt for task in missing), default=0)
