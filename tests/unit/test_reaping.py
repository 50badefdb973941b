"""Lost or queued: the reaper's pure decisions."""

from __future__ import annotations

from video_runner.domain.reaping import current_round, grace_s, is_consumed, plan_reaping
from video_runner.domain.task_pages import TaskRecord


def _task(frame_id: int, partition: int, offset: int, attempt: int = 0) -> TaskRecord:
    return TaskRecord(frame_id, None, None, None, f"f/{frame_id}.jpg", partition, offset, attempt)


def test_a_task_is_consumed_only_once_the_group_committed_past_its_offset():
    """Committed offsets name the next record to read: offset 7 is consumed at 8, not at 7,
    and a partition the group never committed has consumed nothing."""
    task = _task(5, partition=1, offset=7)
    assert not is_consumed(task, {1: 7})
    assert is_consumed(task, {1: 8})
    assert not is_consumed(task, {0: 100})


def test_lost_tasks_are_republished_until_their_last_attempt_then_fail_the_event():
    """A lost task under the attempt limit is re-published; one at the limit fails the event."""
    fresh, last = _task(0, 0, 1, attempt=1), _task(5, 0, 2, attempt=3)
    plan = plan_reaping([fresh, last], max_attempts=3)
    assert plan.republish == (fresh,)
    assert plan.exhausted == (last,)
    assert plan.fails_event
    assert not plan_reaping([fresh], max_attempts=3).fails_event


def test_the_grace_period_doubles_with_each_round_and_the_round_is_the_most_attempts():
    """Round n waits deadline x 2**n; an event's round is its most re-published frame's."""
    assert [grace_s(120.0, n) for n in range(4)] == [120.0, 240.0, 480.0, 960.0]
    assert current_round([_task(0, 0, 0, 1), _task(5, 0, 1, 2)]) == 2
    assert current_round([]) == 0
