"""Per-video options through the services: video path, inference worker, results path."""

from __future__ import annotations

import json

import numpy as np

from support.fakes import FakeDetector, FakeMessage
from support.worlds import (
    InferenceWorld,
    ResultsWorld,
    VideoWorld,
    extracted_frames,
    outbox_message,
    result_message,
)
from video_runner.domain.preprocess import encode_jpeg
from video_runner.domain.sampling import SamplingPlan
from video_runner.domain.status import Status
from video_runner.errors import ErrorCode

OPTIONS = {"fps": 2, "start_ms": 1000, "classes": ["person"], "min_confidence": 0.5, "tag": "t-1"}


def _with_options(options) -> FakeMessage:
    payload = {"bucket": "videos", "object": "input/ev-1.mp4", "options": options}
    return outbox_message({"event_id": "ev-1", "payload": payload})


async def test_options_are_stored_on_the_document_and_sample_this_video_only(tmp_path):
    """The document keeps the options as given and the sampling they make; the frame source
    gets this video's own plan."""
    world = VideoWorld(tmp_path, extracted_frames(2))
    await world.path.handle(_with_options(OPTIONS))
    document = world.store.document("ev-1")
    assert document is not None
    assert document["options"] == {**OPTIONS, "fps": 2.0}
    assert document["sampling"] == {"fps": 2.0, "start_ms": 1000}
    assert world.source.plans == [SamplingPlan(every_n=None, fps=2.0, start_ms=1000)]


async def test_every_task_carries_the_classes_and_the_confidence_floor(tmp_path):
    """Inference workers read what to keep from the task, not from the event."""
    world = VideoWorld(tmp_path, extracted_frames(2))
    await world.path.handle(_with_options(OPTIONS))
    assert {t.value["min_confidence"] for t in world.tasks()} == {0.5}
    assert all(t.value["classes"] == ["person"] for t in world.tasks())


async def test_a_bad_option_dead_letters_the_event_and_fails_it_with_bad_options(tmp_path):
    """The copy goes to the DLQ and the event is recorded failed, so a producer can see why;
    no video is downloaded."""
    world = VideoWorld(tmp_path, extracted_frames(2))
    message = _with_options({"fps": -1})
    await world.path.handle(message)
    (sent,) = world.dead_letters()
    assert sent.headers["error_code"] == ErrorCode.BAD_OPTIONS
    document = world.store.document("ev-1")
    assert document is not None
    assert document["status"] == Status.FAILED
    assert document["error"]["code"] == ErrorCode.BAD_OPTIONS
    assert "fps" in document["error"]["message"]
    assert world.objects.downloads == []
    await world.path.handle(message)
    assert len(world.dead_letters()) == 1  # a redelivery is a duplicate


async def test_the_inference_worker_applies_the_tasks_classes_and_confidence_floor():
    """The fake detector answers class v<pixel> at 0.5: a floor above it, or another class,
    leaves the frame without objects; a matching filter keeps them."""
    world = InferenceWorld(detector=FakeDetector(), inference_batch_size=1)
    world.objects.objects["frames", "f/1.jpg"] = encode_jpeg(np.full((16, 16, 3), 7, np.uint8), 95)
    base = {"event_id": "ev-1", "bucket": "frames", "object": "f/1.jpg"}
    cases = [({"classes": ["v7"]}, 1), ({"classes": ["dog"]}, 0), ({"min_confidence": 0.6}, 0)]
    try:
        for frame_id, (options, _) in enumerate(cases):
            task = {**base, "frame_id": frame_id, **options}
            message = FakeMessage("inference_tasks", value=json.dumps(task).encode())
            await world.handler.handle(message)
    finally:
        await world.close()
    kept = [len(s.value["objects"]) for s in world.results()]
    assert kept == [count for _, count in cases]


async def test_results_of_a_video_sampled_by_time_are_stored_for_any_frame_id(tmp_path):
    """With fps sampling the ids follow timestamps, not multiples of every_n: a result for
    frame 37 of a three-frame event is expected, and completes it with the others."""
    world = ResultsWorld()
    world.store.put(
        "ev-1",
        Status.PROCESSING,
        sampling={"fps": 2.0},
        total_frames=3,
        results_partitions=4,
    )
    await world.path.handle_batch([result_message(0), result_message(13), result_message(37)])
    document = world.store.document("ev-1")
    assert document is not None
    assert document["status"] == Status.PREDICTABLE
