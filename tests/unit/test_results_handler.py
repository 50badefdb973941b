"""The results path: batches stored once, counters by partition, one move to predictable, repair."""

from __future__ import annotations

import asyncio
import random

import pytest

from support.fakes import FakeMessage
from support.worlds import PARTITIONS, ResultsWorld, result_message, spread
from video_runner.domain.results import FrameResult
from video_runner.domain.status import Status
from video_runner.errors import DependencyUnavailable, ErrorCode

TOPIC = "inference_results"


async def test_a_batch_is_stored_once_and_completes_the_event_with_one_notice():
    """Every result of a batch is stored; the event moves to predictable once, with a summary,
    and one notice tells the outbox-S3 workers."""
    world = ResultsWorld()
    await world.extracted(frames=5)
    await world.path.handle_batch(spread([result_message(i * 5, offset=i) for i in range(5)]))
    document = world.store.document("ev-1")
    assert document["status"] == Status.PREDICTABLE
    assert document["results_received"] == 5
    assert document["failed_frames"] == 0
    assert [r.frame_id for r in world.store.stored_results("ev-1")] == [0, 5, 10, 15, 20]
    assert len(world.store.moved_to(Status.PREDICTABLE)) == 1
    assert [(n.key, n.value) for n in world.notices()] == [
        ("ev-1", {"event_id": "ev-1", "status": "predictable"})
    ]


async def test_duplicates_in_a_batch_and_across_batches_are_counted_once():
    """A result seen twice (same batch or a later one) is stored and counted once: the first
    one wins, and the event is not complete until every distinct frame is in."""
    world = ResultsWorld(max_failed_frame_ratio=0.5)
    await world.extracted(frames=3)
    await world.path.handle_batch(
        [result_message(0), result_message(0), result_message(5, error="first")]
    )
    await world.path.handle_batch([result_message(5), result_message(5)])
    document = world.store.document("ev-1")
    assert document["status"] == Status.PROCESSING
    assert (await world.store.progress("ev-1", PARTITIONS)).stored == 2
    assert world.store.results["ev-1", 5].error == "first"
    assert world.telemetry.total("results_duplicate") == 3
    await world.path.handle_batch([result_message(10)])
    assert (await world.store.get("ev-1")).status == Status.PREDICTABLE


@pytest.mark.parametrize("seed", range(5))
async def test_shuffled_duplicated_results_over_partitions_complete_exactly_once(seed):
    """Results in any order, duplicated, over every partition and in batches of any size, still
    complete the event exactly once with every frame stored exactly once."""
    rng = random.Random(seed)
    world = ResultsWorld()
    await world.extracted(frames=40)
    messages = spread([result_message(i * 5, offset=i) for i in range(40)] * 3)
    rng.shuffle(messages)
    while messages:
        size = rng.randint(1, 25)
        batch, messages = messages[:size], messages[size:]
        await world.path.handle_batch(batch)
    assert len(world.store.stored_results("ev-1")) == 40
    assert len(world.store.moved_to(Status.PREDICTABLE)) == 1
    assert len(world.notices()) == 1


async def test_two_replicas_storing_one_event_at_once_move_it_exactly_once():
    """Two runner replicas (two results paths on one store) storing halves of one event at the
    same time: the event moves to predictable once and one notice is sent."""
    world = ResultsWorld()
    other = world.replica()
    await world.extracted(frames=60)
    messages = spread([result_message(i * 5, offset=i) for i in range(60)])
    halves = [m for m in messages if m.partition < 2], [m for m in messages if m.partition >= 2]
    await asyncio.gather(world.path.handle_batch(halves[0]), other.path.handle_batch(halves[1]))
    assert len(world.store.stored_results("ev-1")) == 60
    assert len(world.store.moved_to(Status.PREDICTABLE)) == 1
    assert len(world.notices()) == 1


async def test_results_before_the_total_are_counted_and_completed_by_the_video_path_check():
    """Results stored while the video path still publishes count; the check the video path
    makes once it sets the total finishes the event."""
    world = ResultsWorld()
    await world.extracted(frames=3, total=False)
    await world.path.handle_batch([result_message(0), result_message(5), result_message(10)])
    assert (await world.store.get("ev-1")).status == Status.PROCESSING
    await world.store.update_processing("ev-1", {"total_frames": 3})
    await world.completion.check("ev-1")
    assert (await world.store.get("ev-1")).status == Status.PREDICTABLE


async def test_results_of_unknown_or_finished_events_and_unsampled_frames_are_not_stored():
    """Nothing waits for them: a result of an unknown event, of a finished event, or of a frame
    the sampling never selected is neither stored nor counted."""
    world = ResultsWorld()
    await world.extracted("ev-1", frames=3)
    world.store.put("ev-done", Status.READY, total_frames=1)
    await world.path.handle_batch(
        [
            result_message(0, "ev-unknown"),
            result_message(0, "ev-done"),
            result_message(7),
            result_message(15),
        ]
    )
    assert world.store.results == {}
    assert (await world.store.progress("ev-1", PARTITIONS)).stored == 0
    assert world.telemetry.total("results_unknown_event") == 1
    assert world.telemetry.total("results_late") == 1
    assert world.telemetry.total("results_unexpected_frame") == 2


async def test_a_poison_message_in_a_batch_is_dead_lettered_and_the_rest_is_stored():
    """A message that is not a valid result goes to the DLQ with its code; its neighbours in the
    batch are stored as usual."""
    world = ResultsWorld()
    await world.extracted(frames=2)
    poison = FakeMessage(topic=TOPIC, offset=9, key=b"x", value=b'{"event_id": "ev-1", NaN}')
    await world.path.handle_batch([result_message(0), poison, result_message(5)])
    (dead,) = world.publisher.on("inference_results.dlq")
    assert dead.headers["error_code"] == str(ErrorCode.BAD_JSON)
    assert dead.headers["original_offset"] == "9"
    assert (await world.store.get("ev-1")).status == Status.PREDICTABLE


async def test_too_many_detector_errors_fail_the_event_with_inference_failed():
    """Above the allowed ratio of detector errors the event fails instead of completing."""
    world = ResultsWorld(max_failed_frame_ratio=0.25)
    await world.extracted(frames=4)
    await world.path.handle_batch(
        [
            result_message(0, error="boom"),
            result_message(5, error="boom"),
            result_message(10),
            result_message(15),
        ]
    )
    document = world.store.document("ev-1")
    assert document["status"] == Status.FAILED
    assert document["error"]["code"] == str(ErrorCode.INFERENCE_FAILED)
    assert document["failed_frames"] == 2
    assert world.notices() == []


async def test_the_hot_path_never_scans_whatever_the_store_holds():
    """Storing results and completing events reads and writes by _id only: no call that a
    server without secondary indexes answers with a scan, however many events are stored."""
    world = ResultsWorld()
    for n in range(50):
        await world.extracted(f"other-{n}", frames=3)
    await world.extracted(frames=20)
    await world.path.handle_batch(spread([result_message(i * 5, offset=i) for i in range(20)]))
    assert (await world.store.get("ev-1")).status == Status.PREDICTABLE
    assert world.store.scans == 0


async def test_a_store_outage_is_retriable_and_the_retry_changes_nothing_twice():
    """MongoDB down mid-batch: DependencyUnavailable for the loop to retry; the retried batch
    stores nothing twice and completes the event once."""
    world = ResultsWorld()
    await world.extracted(frames=2)
    world.store.fail_next(1)
    batch = [result_message(0), result_message(5)]
    with pytest.raises(DependencyUnavailable):
        await world.path.handle_batch(batch)
    await world.path.handle_batch(batch)
    assert len(world.store.stored_results("ev-1")) == 2
    assert len(world.store.moved_to(Status.PREDICTABLE)) == 1


async def test_a_crash_between_insert_and_count_is_repaired_by_the_recount_once_quiet():
    """Results stored but never counted (the process died between the two writes) leave the
    counters short; once the event is quiet the reconciler recounts and completes it."""
    world = ResultsWorld(recount_after_s=30.0)
    await world.extracted(frames=3)
    await world.store.save_results([("ev-1", FrameResult(i, i * 40)) for i in (0, 5, 10)])
    await world.path.handle_batch(
        [result_message(0), result_message(5), result_message(10)]
    )  # all duplicates now
    assert (await world.store.get("ev-1")).status == Status.PROCESSING
    assert await world.reconciler.run_once(now=world.clock.now) == 0  # not quiet yet
    scans_before = world.store.scans
    finished = await world.reconciler.run_once(now=world.clock.advance(31))
    assert finished == 1
    assert (await world.store.get("ev-1")).status == Status.PREDICTABLE
    assert world.store.scans > scans_before  # the recount is the one place that scans


async def test_the_reconciler_recounts_a_quiet_event_only_once_until_it_moves_again():
    """An event waiting for results that never come is recounted once, not at every pass."""
    world = ResultsWorld(recount_after_s=30.0)
    await world.extracted(frames=3)
    await world.path.handle_batch([result_message(0)])
    world.clock.advance(31)
    await world.reconciler.run_once(now=world.clock.now)
    recounts = world.store.scans
    await world.reconciler.run_once(now=world.clock.advance(31))
    await world.reconciler.run_once(now=world.clock.advance(31))
    assert world.store.scans - recounts == 2  # the two page reads of processing events only


async def test_a_thousand_queued_frames_are_never_republished_or_failed_for_waiting():
    """Frames the inference group has not consumed are a backlog, not a loss: hours of waiting
    re-publish nothing and fail nothing."""
    world = ResultsWorld(result_deadline_s=120.0, reaper_max_attempts=3)
    await world.extracted(frames=1000)
    world.offsets.committed_offsets = {}  # the inference workers are busy elsewhere
    for _ in range(20):
        await world.reaper.run_once(now=world.clock.advance(3600))
    assert world.republished() == []
    assert (await world.store.get("ev-1")).status == Status.PROCESSING
    # Nothing consumed, nothing to look up: a backlog costs page reads, not frame lookups.
    assert world.store.lookups == 0


async def test_consumed_frames_without_a_result_are_republished_once_per_round():
    """After the grace period, a frame the group consumed but never answered is re-published
    with attempt 1, its record moves to the new offset, and a second pass within the doubled
    grace re-publishes nothing more; frames still queued are left alone."""
    world = ResultsWorld(result_deadline_s=120.0)
    await world.extracted(frames=8)
    await world.path.handle_batch([result_message(i * 5) for i in range(4)])
    page = await world.store.read_task_page("ev-1", 0)
    lost = [t for t in page.tasks if t.frame_id in (20, 25)]
    queued = [t for t in page.tasks if t.frame_id in (30, 35)]
    committed = {t.partition: t.offset + 1 for t in lost}
    for task in queued:  # the group has not reached these
        committed[task.partition] = min(committed.get(task.partition, 0), task.offset)
    world.offsets.committed_offsets = committed
    assert await world.reaper.run_once(now=world.clock.advance(60)) == 0
    assert await world.reaper.run_once(now=world.clock.advance(61)) == 1
    again = sorted(s.value["frame_id"] for s in world.republished())
    assert again == [20, 25]
    assert {s.key for s in world.republished()} == {"ev-1/20", "ev-1/25"}
    assert {s.value["attempt"] for s in world.republished()} == {1}
    moved = {t.frame_id: t for t in (await world.store.read_task_page("ev-1", 0)).tasks}
    assert moved[20].attempt == 1
    assert (moved[20].partition, moved[20].offset) != (lost[0].partition, lost[0].offset)
    assert await world.reaper.run_once(now=world.clock.advance(200)) == 0


async def test_two_reapers_republish_a_round_once():
    """Two runner replicas reaping the same event at once: one claims the round."""
    world = ResultsWorld(result_deadline_s=10.0)
    second = world.replica().reaper
    await world.extracted(frames=3)
    world.offsets.committed_offsets = dict.fromkeys(range(PARTITIONS), 10**6)
    now = world.clock.advance(11)
    await asyncio.gather(world.reaper.run_once(now=now), second.run_once(now=now))
    assert sorted(s.value["frame_id"] for s in world.republished()) == [0, 5, 10]


async def test_a_frame_lost_after_the_last_attempt_fails_the_event_with_its_id():
    """A frame consumed and unanswered after every re-publication fails the event with
    inference_timeout, naming the missing frames."""
    world = ResultsWorld(result_deadline_s=10.0, reaper_max_attempts=2)
    await world.extracted(frames=3)
    await world.path.handle_batch([result_message(0)])
    for _ in range(4):
        # Whatever was published so far has been consumed, and nothing answered.
        world.offsets.committed_offsets = dict.fromkeys(range(PARTITIONS), 10**6)
        await world.reaper.run_once(now=world.clock.advance(100))
    document = world.store.document("ev-1")
    assert document["status"] == Status.FAILED
    assert document["error"]["code"] == str(ErrorCode.INFERENCE_TIMEOUT)
    assert document["error"]["missing_frame_ids"] == [5, 10]
    assert sorted(s.value["attempt"] for s in world.republished()) == [1, 1, 2, 2]


async def test_results_waiting_on_a_stalled_results_partition_are_never_reaped_or_failed():
    """The inference group answered every task, but one results partition has not been consumed
    (a rebalance that keeps failing while replicas come and go): hours of passes re-publish
    nothing and fail nothing, then the first pass after the partition moves on reaps as usual."""
    world = ResultsWorld(result_deadline_s=10.0, reaper_max_attempts=2)
    await world.extracted(frames=3)
    world.offsets.committed_offsets = dict.fromkeys(range(PARTITIONS), 10**6)
    results = world.settings.topic_inference_results
    world.offsets.ends[results] = {0: 40, 1: 12, 2: 0, 3: 7}
    stalled = {0: 40, 1: 3, 2: 0, 3: 7}  # partition 1: nine results not consumed
    world.offsets.committed_by_group[world.settings.group_results] = stalled
    for _ in range(10):
        await world.reaper.run_once(now=world.clock.advance(3600))
    assert world.republished() == []
    assert (await world.store.get("ev-1")).status == Status.PROCESSING
    world.offsets.committed_by_group[world.settings.group_results] = {0: 40, 1: 12, 2: 0, 3: 7}
    assert await world.reaper.run_once(now=world.clock.advance(11)) == 1
    assert sorted(s.value["frame_id"] for s in world.republished()) == [0, 5, 10]


async def test_a_results_group_that_lags_but_moves_lets_the_reaper_use_the_previous_pass():
    """Under steady traffic the results group is always a batch behind the topic's end; it has
    passed the end the previous pass saw, so the tasks consumed as of that pass are reaped."""
    world = ResultsWorld(result_deadline_s=10.0)
    await world.extracted(frames=3)
    world.offsets.committed_offsets = dict.fromkeys(range(PARTITIONS), 10**6)
    results, group = world.settings.topic_inference_results, world.settings.group_results
    world.offsets.ends[results] = {0: 100}
    world.offsets.committed_by_group[group] = {0: 90}
    assert await world.reaper.run_once(now=world.clock.advance(11)) == 0  # nothing to go by yet
    world.offsets.ends[results] = {0: 200}
    world.offsets.committed_by_group[group] = {0: 150}  # behind the end, past the last pass's
    assert await world.reaper.run_once(now=world.clock.advance(11)) == 1
    assert sorted(s.value["frame_id"] for s in world.republished()) == [0, 5, 10]
