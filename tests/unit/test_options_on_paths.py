"""Per-video options through the services: video path, inference worker, results path."""

from __future__ import annotations

import json

import numpy as np
from test_video_handler import World, _frames, _message

from support.fakes import (
    FakeDetector,
    FakeMessage,
    FakeObjectStore,
    FakePublisher,
    RecordingTelemetry,
)
from video_runner.domain.preprocess import encode_jpeg
from video_runner.domain.sampling import SamplingPlan
from video_runner.domain.status import Status
from video_runner.errors import ErrorCode
from video_runner.services.inference import BatchingDetector, InferenceConfig, InferenceHandler
from video_runner.services.results_handler import ResultsHandler

OPTIONS = {"fps": 2, "start_ms": 1000, "classes": ["person"], "min_confidence": 0.5, "tag": "t-1"}


def _with_options(options) -> FakeMessage:
    payload = {"bucket": "videos", "object": "input/ev-1.mp4", "options": options}
    return _message({"event_id": "ev-1", "payload": payload})


async def test_options_are_stored_on_the_document_and_sample_this_video_only(tmp_path):
    """The document keeps the options as given and the sampling they make; the frame source
    gets this video's own plan."""
    world = World(tmp_path, _frames(2))
    await world.path.handle(_with_options(OPTIONS))
    document = world.store.document("ev-1")
    assert document is not None
    assert document["options"] == {**OPTIONS, "fps": 2.0}
    assert document["sampling"] == {"fps": 2.0, "start_ms": 1000}
    assert world.source.plans == [SamplingPlan(every_n=None, fps=2.0, start_ms=1000)]


async def test_every_task_carries_the_classes_and_the_confidence_floor(tmp_path):
    """Inference workers read what to keep from the task, not from the event."""
    world = World(tmp_path, _frames(2))
    await world.path.handle(_with_options(OPTIONS))
    assert {t.value["min_confidence"] for t in world.tasks()} == {0.5}
    assert all(t.value["classes"] == ["person"] for t in world.tasks())


async def test_a_bad_option_dead_letters_the_event_and_fails_it_with_bad_options(tmp_path):
    """The copy goes to the DLQ and the event is recorded failed, so a producer can see why;
    no video is downloaded."""
    world = World(tmp_path, _frames(2))
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
    objects = FakeObjectStore()
    objects.objects["frames", "f/1.jpg"] = encode_jpeg(np.full((16, 16, 3), 7, np.uint8), 95)
    publisher = FakePublisher()
    detector = BatchingDetector(FakeDetector(), batch_size=1)
    worker = InferenceHandler(
        InferenceConfig(results_topic="inference_results", dlq_suffix=".dlq"),
        objects=objects,
        publisher=publisher,
        detector=detector,
        telemetry=RecordingTelemetry(),
    )
    base = {"event_id": "ev-1", "bucket": "frames", "object": "f/1.jpg"}
    cases = [({"classes": ["v7"]}, 1), ({"classes": ["dog"]}, 0), ({"min_confidence": 0.6}, 0)]
    try:
        for frame_id, (options, _) in enumerate(cases):
            task = {**base, "frame_id": frame_id, **options}
            await worker.handle(FakeMessage("inference_tasks", value=json.dumps(task).encode()))
    finally:
        await detector.close()
    kept = [len(s.value["objects"]) for s in publisher.on("inference_results")]
    assert kept == [count for _, count in cases]


async def test_results_of_a_video_sampled_by_time_are_stored_for_any_frame_id(tmp_path):
    """With fps sampling the ids follow timestamps, not multiples of every_n: a result for
    frame 37 of a three-frame event is expected, and completes it with the others."""
    from test_results_handler import World as ResultsWorld
    from test_results_handler import _result

    world = ResultsWorld()
    world.store.put(
        "ev-1",
        Status.PROCESSING,
        sampling={"fps": 2.0},
        total_frames=3,
        results_partitions=4,
    )
    path: ResultsHandler = world.path
    await path.handle_batch([_result(0), _result(13), _result(37)])
    document = world.store.document("ev-1")
    assert document is not None
    assert document["status"] == Status.PREDICTABLE
