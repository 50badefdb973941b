"""The results path: each result stored once, exactly one move to predictable, and recovery."""

from __future__ import annotations

import asyncio
import json
import random

import pytest
from fakes import FakeClock, FakeMessage, FakePredictionStore, FakePublisher, RecordingTelemetry

from video_runner.domain.results import FrameResult
from video_runner.domain.status import Status
from video_runner.errors import ErrorCode
from video_runner.services.results_path import (
    Completion,
    Reaper,
    Reconciler,
    ResultsConfig,
    ResultsPath,
)

TOPIC = "inference_results"


def _result(frame_id: int, event_id: str = "ev-1", *, error=None, offset: int = 0) -> FakeMessage:
    document = {
        "event_id": event_id,
        "frame_id": frame_id,
        "timestamp_ms": frame_id * 40,
        "objects": [{"class": "person", "box": [1, 2, 3, 4], "conf": 0.8}],
        "model": "fake",
    }
    if error is not None:
        document["error"] = error
    return FakeMessage(
        topic=TOPIC, offset=offset, key=event_id.encode(), value=json.dumps(document).encode()
    )


class World:
    def __init__(self, **config):
        self.clock = FakeClock()
        self.store = FakePredictionStore(clock=self.clock)
        self.publisher = FakePublisher()
        self.telemetry = RecordingTelemetry()
        self.config = ResultsConfig(tasks_topic="inference_tasks", dlq_suffix=".dlq", **config)
        self.completion = Completion(self.config, self.store, self.telemetry)
        self.path = ResultsPath(
            self.config,
            store=self.store,
            publisher=self.publisher,
            completion=self.completion,
            telemetry=self.telemetry,
        )
        self.reaper = Reaper(
            self.config,
            store=self.store,
            publisher=self.publisher,
            completion=self.completion,
            telemetry=self.telemetry,
        )

    async def extracted(self, event_id: str = "ev-1", frames: int = 5, *, total: bool = True):
        """An event the video path finished: frame records, and total_frames if ``total``."""
        self.store.put(event_id, Status.PROCESSING, frames_published=frames)
        await self.store.record_frames(
            event_id,
            [
                {
                    "frame_id": i,
                    "timestamp_ms": i * 40,
                    "width": 64,
                    "height": 48,
                    "bucket": "frames",
                    "object": f"frames/{event_id}/{i}.jpg",
                }
                for i in range(frames)
            ],
        )
        if total:
            await self.store.update_processing(event_id, {"total_frames": frames})

    async def deliver(self, *messages: FakeMessage) -> None:
        for message in messages:
            await self.path.handle(message)
        await self.completion.idle()

    async def status(self, event_id: str = "ev-1"):
        document = await self.store.get(event_id)
        assert document is not None
        return document


async def test_duplicated_and_shuffled_results_make_exactly_one_move_to_predictable():
    """Every result twice, in random order: one transition, counted as distinct results."""
    world = World()
    await world.extracted(frames=5)
    messages = [_result(i) for i in range(5)] * 2
    random.Random(7).shuffle(messages)
    await world.deliver(*messages)
    document = await world.status()
    assert document["status"] == Status.PREDICTABLE
    assert document["results_received"] == 5
    assert document["failed_frames"] == 0
    assert len(world.store.moved_to(Status.PREDICTABLE)) == 1
    assert world.telemetry.total("results_duplicate") == 5
    assert world.telemetry.total("events_predictable") == 1


async def test_results_delivered_concurrently_still_move_the_event_only_once():
    """Handled all at once (as the loop's in-flight work is), the transition happens once."""
    world = World()
    await world.extracted(frames=8)
    await asyncio.gather(*(world.path.handle(_result(i % 8)) for i in range(24)))
    await world.completion.idle()
    assert (await world.status())["status"] == Status.PREDICTABLE
    assert len(world.store.moved_to(Status.PREDICTABLE)) == 1


async def test_the_first_result_of_a_frame_wins():
    """A later duplicate with different content changes nothing stored."""
    world = World()
    await world.extracted(frames=2)
    await world.deliver(_result(0), _result(0, error="late duplicate"))
    stored = [r async for r in world.store.iter_results("ev-1")]
    assert [r.error for r in stored] == [None]
    assert stored[0].objects == [{"class": "person", "box": [1, 2, 3, 4], "conf": 0.8}]


async def test_results_before_the_total_complete_once_the_total_is_set():
    """All results arrive while extraction still runs; the check after total_frames finishes.

    Until then the results path stores and counts but leaves the document to the video path.
    """
    world = World()
    await world.extracted(frames=3, total=False)
    before = dict(await world.status())
    await world.deliver(*(_result(i) for i in range(3)))
    document = await world.status()
    assert document["status"] == Status.PROCESSING
    assert await world.store.count_results("ev-1") == (3, 0)
    assert document.get("results_received") == before.get("results_received")
    await world.store.update_processing("ev-1", {"total_frames": 3})
    await world.completion.check("ev-1")
    finished = await world.status()
    assert finished["status"] == Status.PREDICTABLE
    assert finished["results_received"] == 3


async def test_partial_results_update_the_received_counter_only():
    """Two of three results: still processing, results_received says 2."""
    world = World()
    await world.extracted(frames=3)
    await world.deliver(_result(0), _result(2))
    document = await world.status()
    assert document["status"] == Status.PROCESSING
    assert document["results_received"] == 2
    assert world.store.moved_to(Status.PREDICTABLE) == []


async def test_a_result_for_an_unknown_event_is_stored_and_counted_without_failing():
    """No prediction document: the result is kept for inspection and nothing else happens."""
    world = World()
    await world.deliver(_result(4, "ghost"))
    assert world.store.frames[("ghost", 4)]["result"]["objects"] is not None
    # Kept, but not counted: no task was published for it, so it cannot complete anything.
    assert await world.store.count_results("ghost") == (0, 0)
    assert await world.store.get("ghost") is None
    assert world.telemetry.total("results_unknown_event") == 1
    assert world.publisher.sent == []


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (b"not json", ErrorCode.BAD_JSON),
        (json.dumps({"event_id": "ev-1"}).encode(), ErrorCode.SCHEMA),
        (json.dumps({"event_id": "../x", "frame_id": 0}).encode(), ErrorCode.BAD_ID),
    ],
)
async def test_a_malformed_result_is_dead_lettered(value, code):
    """Copied to inference_results.dlq with the reason in headers; nothing is stored."""
    world = World()
    message = FakeMessage(topic=TOPIC, partition=2, offset=9, key=b"k", value=value)
    await world.deliver(message)
    (sent,) = world.publisher.on("inference_results.dlq")
    assert (sent.key, sent.value) == (b"k", value)
    assert sent.headers["error_code"] == code
    assert sent.headers["original_offset"] == "9"
    assert world.store.frames == {}
    assert world.telemetry.total("results_rejected", error_code=str(code)) == 1


async def test_too_many_detector_errors_fail_the_event_with_inference_failed():
    """2 errors in 5 frames (40 %) above the allowed 20 %: failed, with the counts."""
    world = World(max_failed_ratio=0.2)
    await world.extracted(frames=5)
    await world.deliver(*(_result(i, error="bad_image: x" if i < 2 else None) for i in range(5)))
    document = await world.status()
    assert document["status"] == Status.FAILED
    assert document["error"]["code"] == ErrorCode.INFERENCE_FAILED
    assert document["failed_frames"] == 2
    assert document["results_received"] == 5
    assert world.store.moved_to(Status.PREDICTABLE) == []


async def test_detector_errors_at_the_allowed_ratio_still_make_the_event_predictable():
    """1 error in 5 frames is exactly 20 %: predictable, with failed_frames 1."""
    world = World(max_failed_ratio=0.2)
    await world.extracted(frames=5)
    await world.deliver(*(_result(i, error="bad_image: x" if i == 3 else None) for i in range(5)))
    document = await world.status()
    assert document["status"] == Status.PREDICTABLE
    assert document["failed_frames"] == 1


async def _stored_without_check(world: World, event_id: str, frame_ids) -> None:
    """Results saved as ResultsPath saves them, then the process died before any check."""
    for frame_id in frame_ids:
        assert await world.store.save_result(
            event_id, FrameResult(frame_id=frame_id, timestamp_ms=None, model="fake")
        )


async def test_the_reconciler_finishes_an_event_whose_transition_was_lost():
    """All results stored but no check ran (a crash): the reconciler moves it to predictable."""
    world = World()
    await world.extracted(frames=3)
    await world.extracted("ev-still-extracting", frames=2, total=False)
    await _stored_without_check(world, "ev-1", range(3))
    await _stored_without_check(world, "ev-still-extracting", range(2))
    assert (await world.status())["status"] == Status.PROCESSING
    checked = await Reconciler(world.store, world.completion).run_once()
    assert checked == 1
    document = await world.status()
    assert document["status"] == Status.PREDICTABLE
    assert document["results_received"] == 3
    assert (await world.status("ev-still-extracting"))["status"] == Status.PROCESSING


async def test_the_reconciler_leaves_incomplete_events_processing():
    """Two of three results: checked, still processing, nothing moved."""
    world = World()
    await world.extracted(frames=3)
    await _stored_without_check(world, "ev-1", [0, 2])
    assert await Reconciler(world.store, world.completion).run_once() == 1
    assert (await world.status())["status"] == Status.PROCESSING
    assert world.store.moved_to(Status.PREDICTABLE) == []


async def test_the_reaper_waits_for_the_deadline():
    """Before result_deadline_s since the last progress, nothing is re-published."""
    world = World(result_deadline_s=120)
    await world.extracted(frames=3)
    world.clock.advance(119)
    assert await world.reaper.run_once(world.clock.now) == 0
    assert world.publisher.sent == []


async def test_the_reaper_republishes_pending_frames_with_the_next_attempt():
    """After the deadline, the frames without a result are re-published with attempt + 1."""
    world = World(result_deadline_s=120)
    await world.extracted(frames=3)
    await world.deliver(_result(1))
    world.clock.advance(121)
    assert await world.reaper.run_once(world.clock.now) == 1
    tasks = world.publisher.on("inference_tasks")
    assert [t.value["frame_id"] for t in tasks] == [0, 2]
    assert {t.key for t in tasks} == {"ev-1"}
    assert tasks[0].value == {
        "event_id": "ev-1",
        "frame_id": 0,
        "bucket": "frames",
        "object": "frames/ev-1/0.jpg",
        "timestamp_ms": 0,
        "width": 64,
        "height": 48,
        "attempt": 1,
    }
    document = await world.status()
    assert document["reaper_attempts"] == 1
    assert document["status"] == Status.PROCESSING


async def test_the_reaper_leaves_events_whose_total_is_unknown_to_the_video_path():
    """Without total_frames the video path still owns the event."""
    world = World(result_deadline_s=120)
    await world.extracted(frames=3, total=False)
    world.clock.advance(10_000)
    assert await world.reaper.run_once(world.clock.now) == 0
    assert world.publisher.sent == []


async def test_the_reaper_fails_the_event_with_inference_timeout_after_its_last_attempt():
    """After max attempts: failed inference_timeout, listing the missing frame ids."""
    world = World(result_deadline_s=120, reaper_max_attempts=2)
    await world.extracted(frames=4)
    await world.deliver(_result(0), _result(3))
    attempts = []
    for _ in range(3):
        world.clock.advance(10_000)
        await world.reaper.run_once(world.clock.now)
        attempts.append(sorted({t.value["attempt"] for t in world.publisher.on("inference_tasks")}))
    assert attempts[-1] == [1, 2]
    document = await world.status()
    assert document["status"] == Status.FAILED
    assert document["error"]["code"] == ErrorCode.INFERENCE_TIMEOUT
    assert document["error"]["missing_frame_ids"] == [1, 2]
    assert document["error"]["missing_count"] == 2
    assert world.telemetry.total("events_failed", error_code="inference_timeout") == 1


async def test_the_reaper_finishes_instead_of_failing_when_the_results_are_all_in():
    """A lost transition found by the reaper is completed, not timed out nor re-published."""
    world = World(result_deadline_s=120, reaper_max_attempts=0)
    await world.extracted(frames=2)
    await _stored_without_check(world, "ev-1", [0, 1])
    world.clock.advance(10_000)
    await world.reaper.run_once(world.clock.now)
    assert (await world.status())["status"] == Status.PREDICTABLE
    assert world.publisher.sent == []


async def test_later_reaper_attempts_wait_longer():
    """After two re-publications, the next one waits twice the deadline since the last."""
    world = World(result_deadline_s=120, reaper_max_attempts=5)
    await world.extracted(frames=2)
    for _ in range(2):
        world.clock.advance(121)
        assert await world.reaper.run_once(world.clock.now) == 1
    world.clock.advance(121)
    assert await world.reaper.run_once(world.clock.now) == 0
    world.clock.advance(120)
    assert await world.reaper.run_once(world.clock.now) == 1
    assert (await world.status())["reaper_attempts"] == 3


async def test_a_result_arriving_pushes_the_reaper_deadline_back():
    """Progress (a new result) moves updated_at, so a slow but moving event is not reaped."""
    world = World(result_deadline_s=120)
    await world.extracted(frames=3)
    world.clock.advance(100)
    await world.deliver(_result(0))
    world.clock.advance(100)
    assert await world.reaper.run_once(world.clock.now) == 0
    assert world.publisher.sent == []


async def test_two_reapers_acting_at_once_republish_an_overdue_event_once():
    """Two runner replicas reaping the same event at the same moment: one attempt, one copy."""
    world = World(result_deadline_s=120)
    other = Reaper(
        world.config,
        store=world.store,
        publisher=world.publisher,
        completion=world.completion,
        telemetry=world.telemetry,
    )
    await world.extracted(frames=3)
    await world.deliver(_result(1))
    world.clock.advance(121)
    await asyncio.gather(world.reaper.run_once(world.clock.now), other.run_once(world.clock.now))
    tasks = world.publisher.on("inference_tasks")
    assert [t.value["frame_id"] for t in tasks] == [0, 2]
    assert (await world.status())["reaper_attempts"] == 1
