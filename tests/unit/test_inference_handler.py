"""The inference worker: concurrent frames batched for the detector, one result per task."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from support.fakes import FakeDetector, FakeMessage
from support.worlds import InferenceWorld
from video_runner.domain.preprocess import encode_jpeg
from video_runner.errors import ErrorCode
from video_runner.services.inference import BatchingDetector


def _image(value: int) -> np.ndarray:
    return np.full((16, 16, 3), value, dtype=np.uint8)


@pytest.fixture
async def batching():
    detectors: list[BatchingDetector] = []

    def make(detector: FakeDetector, **options) -> BatchingDetector:
        batching = BatchingDetector(detector, **options)
        detectors.append(batching)
        return batching

    yield make
    for batching in detectors:
        await batching.close()


async def test_concurrent_calls_are_gathered_into_batches(batching):
    """Eight frames awaited together reach the detector in batches larger than one."""
    detector = FakeDetector(delay_s=0.02)
    batcher = batching(detector, batch_size=4, max_wait_s=0.05)
    results = await asyncio.gather(*(batcher.detect(_image(v)) for v in range(8)))
    assert max(detector.batches) > 1
    assert all(size <= 4 for size in detector.batches)
    assert sum(detector.batches) == 8
    assert [r[0].cls for r in results] == [f"v{v}" for v in range(8)]


async def test_a_lone_call_is_not_held_longer_than_the_wait(batching):
    """One frame with nothing to batch with goes alone, after at most max_wait_s."""
    detector = FakeDetector()
    batcher = batching(detector, batch_size=16, max_wait_s=0.01)
    result = await asyncio.wait_for(batcher.detect(_image(3)), timeout=5)
    assert result[0].cls == "v3"
    assert detector.batches == [1]
    assert batcher.name == "fake-detector"


async def test_a_detector_error_reaches_every_waiter_of_the_batch(batching):
    """Each frame of a failed batch gets the detector's exception; the worker keeps running."""
    detector = FakeDetector(error=RuntimeError("model exploded"))
    batcher = batching(detector, batch_size=4, max_wait_s=0.05)
    outcomes = await asyncio.gather(
        *(batcher.detect(_image(v)) for v in range(3)), return_exceptions=True
    )
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    assert {str(o) for o in outcomes} == {"model exploded"}
    detector.error = None
    assert (await batcher.detect(_image(9)))[0].cls == "v9"


@pytest.fixture
async def world():
    """An inference handler built by the composition root, its batching task closed after."""
    world = InferenceWorld()
    yield world
    await world.close()


def _task(frame_id: int = 5, *, event_id: str = "ev-1", key: str | None = None) -> FakeMessage:
    task = {
        "event_id": event_id,
        "frame_id": frame_id,
        "bucket": "frames",
        "object": key or f"frames/{event_id}/{frame_id}.jpg",
        "timestamp_ms": frame_id * 40,
        "width": 16,
        "height": 16,
        "attempt": 0,
    }
    return FakeMessage(
        topic="inference_tasks",
        offset=frame_id,
        key=event_id.encode(),
        value=json.dumps(task).encode(),
    )


async def test_a_task_yields_one_result_keyed_by_its_frame_with_the_model_name(world):
    """The frame is read, detected and published as a result keyed by its frame (event/frame)."""
    world.objects.objects["frames", "frames/ev-1/5.jpg"] = encode_jpeg(_image(200), 100)
    await world.handler.handle(_task(5))
    (sent,) = world.results()
    assert sent.key == "ev-1/5"
    assert sent.value["event_id"] == "ev-1"
    assert sent.value["frame_id"] == 5
    assert sent.value["timestamp_ms"] == 200
    assert sent.value["model"] == "hog-v1"
    assert "error" not in sent.value
    (detected,) = sent.value["objects"]
    assert detected["box"] == [1.0, 2.0, 3.0, 4.0]
    assert detected["conf"] == 0.5
    assert detected["class"].startswith("v")  # the decoded JPEG's first byte, near 200
    assert abs(int(detected["class"][1:]) - 200) <= 3
    assert world.telemetry.total("frames_inferred", status="ok") == 1


async def test_a_missing_frame_object_yields_a_result_with_an_error(world):
    """The runner must hear about the frame: a result with error, no objects, no exception."""
    await world.handler.handle(_task(10))
    (sent,) = world.results()
    assert sent.value["frame_id"] == 10
    assert sent.value["objects"] == []
    assert sent.value["error"].startswith(f"{ErrorCode.MISSING_OBJECT}:")
    assert sent.value["model"] == "hog-v1"
    assert world.detector.batches == []
    assert world.telemetry.total("frames_inferred", status="error") == 1


async def test_an_undecodable_frame_yields_a_result_with_a_bad_image_error(world):
    """Bytes that are not a JPEG: a result whose error says bad_image."""
    world.objects.objects["frames", "frames/ev-1/5.jpg"] = b"definitely not a jpeg"
    await world.handler.handle(_task(5))
    (sent,) = world.results()
    assert sent.value["error"].startswith("bad_image:")
    assert sent.value["objects"] == []


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (b"{", ErrorCode.BAD_JSON),
        (json.dumps({"event_id": "ev-1", "frame_id": 0}).encode(), ErrorCode.SCHEMA),
        (
            json.dumps(
                {"event_id": "ev-1", "frame_id": 0, "bucket": "frames", "object": "../x.jpg"}
            ).encode(),
            ErrorCode.BAD_ID,
        ),
    ],
)
async def test_a_malformed_task_is_dead_lettered(world, value, code):
    """Copied to inference_tasks.dlq with the reason; no result, no S3 read."""
    message = FakeMessage(topic="inference_tasks", partition=3, offset=77, key=None, value=value)
    await world.handler.handle(message)
    assert world.results() == []
    (sent,) = world.dead_letters()
    assert sent.value == value
    assert sent.key is None
    assert sent.headers["error_code"] == code
    assert sent.headers["original_partition"] == "3"
    assert world.telemetry.total("tasks_rejected", error_code=str(code)) == 1


async def test_concurrent_tasks_each_get_their_own_result(world):
    """Tasks handled together (the loop's in-flight work) publish one result each."""
    for frame_id in range(6):
        world.objects.objects["frames", f"frames/ev-1/{frame_id}.jpg"] = encode_jpeg(
            _image(frame_id * 40), 100
        )
    await asyncio.gather(*(world.handler.handle(_task(i)) for i in range(6)))
    assert sorted(s.value["frame_id"] for s in world.results()) == list(range(6))
    assert sum(world.detector.batches) == 6


async def test_closing_a_batching_detector_leaves_no_task_of_it_running(batching):
    """``close`` returns once the batching task has ended, so a process that closes it (or a
    test) leaves nothing behind on the event loop."""
    batcher = batching(FakeDetector(), batch_size=4, max_wait_s=0.01)
    assert (await batcher.detect(_image(1)))[0].cls == "v1"
    await batcher.close()
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert [t for t in others if not t.done()] == []
