"""Tracks and re-runs in the whole flow, in memory: a real 23-frame video tracked from its event
to ready, then its stored frames run again through another detector for a second version,
through the services as production wires them (the outbox_events router, the re-run path, an
inference worker with its detector pool), joined by the in-memory broker."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from support.broker import InMemoryBroker
from support.fake_versions import FakeVersionStore
from support.fakes import FakeConsumedOffsets, FakeObjectStore, RecordingTelemetry
from support.videos import make_video
from video_runner import bootstrap
from video_runner.bootstrap import services
from video_runner.domain.detections import Detection
from video_runner.domain.status import Status
from video_runner.settings import load_settings

SETTINGS = load_settings()
EVENT = "ev-1"
VERSION = "ev-1--v2"
FRAME_IDS = [0, 5, 10, 15, 20]


class SteadyDetector:
    """One person in the same place on every frame: one track across the whole video."""

    def __init__(self, name: str) -> None:
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def detect(self, images: Sequence[Any]) -> list[list[Detection]]:
        return [[Detection("person", (4.0, 4.0, 40.0, 40.0), 0.9)] for _ in images]


class Flow:
    """One replica of each service on shared state, built by ``bootstrap.services`` as the
    processes build them (the detectors are steady fakes)."""

    def __init__(self, tmp_path, broker, store, objects) -> None:
        settings = load_settings(
            work_dir=str(tmp_path / "work"), detector="onnx", detectors_served="hog,onnx"
        )
        self.telemetry = RecordingTelemetry()
        runner = services.runner_services(
            settings,
            store=store,
            objects=objects,
            publisher=broker,
            frames=bootstrap.frame_source(settings),
            offsets=FakeConsumedOffsets(),
            telemetry=self.telemetry,
        )
        own = services.batching_detector(settings, SteadyDetector("steady-onnx"))
        self.detectors = services.detector_pool(
            settings, own, build=lambda kind: SteadyDetector(f"steady-{kind}")
        )
        self.handlers = {
            SETTINGS.topic_outbox_events: services.outbox_events(
                settings,
                runner,
                store=store,
                versions=store,
                objects=objects,
                results=objects,
                publisher=broker,
                telemetry=self.telemetry,
            ),
            SETTINGS.topic_inference_tasks: services.inference_handler(
                settings,
                objects=objects,
                publisher=broker,
                detector=own,
                telemetry=self.telemetry,
                detectors=self.detectors,
            ),
            SETTINGS.topic_inference_results: runner.results,
            SETTINGS.topic_predictable_events: services.outbox_service(
                settings,
                store=store,
                objects=objects,
                telemetry=self.telemetry,
                trackers=bootstrap.trackers(settings),
            ),
        }
        for topic, handler in self.handlers.items():
            broker.subscribe(topic, handler)


@pytest.fixture
async def world(tmp_path):
    """A tracked video taken to ready: the broker, the store, S3 and the services."""
    video = make_video(tmp_path / "video.mp4", frames=23, width=64, height=48)
    objects = FakeObjectStore()
    objects.objects[SETTINGS.bucket_videos, f"input/{EVENT}.mp4"] = video.read_bytes()
    broker, store = InMemoryBroker(), FakeVersionStore()
    payload = {"bucket": "videos", "object": f"input/{EVENT}.mp4", "options": {"track": True}}
    broker.send(SETTINGS.topic_outbox_events, EVENT, {"event_id": EVENT, "payload": payload})
    flow = Flow(tmp_path, broker, store, objects)
    await broker.run()
    yield broker, store, objects, flow
    await flow.detectors.close()


def final_json(objects: FakeObjectStore, event_id: str) -> dict:
    return json.loads(objects.objects[SETTINGS.bucket_videos, f"detection/{event_id}.json"])


def rerun(broker: InMemoryBroker, request_id: str = "r-1", detector: str | None = "hog") -> None:
    message: dict[str, Any] = {"type": "reinfer", "event_id": EVENT, "request_id": request_id}
    if detector is not None:
        message["detector"] = detector
    broker.send(SETTINGS.topic_outbox_events, EVENT, message)


@pytest.mark.timeout(30)
async def test_a_tracked_video_has_one_stable_track_id_across_its_frames(world):
    """``track: true``: the person on every sampled frame is track 1, seen on five frames."""
    _, store, objects, _ = world
    assert store.document(EVENT)["status"] == Status.READY.value
    final = final_json(objects, EVENT)
    assert [f["frame_id"] for f in final["frames"]] == FRAME_IDS
    assert [o["track_id"] for f in final["frames"] for o in f["objects"]] == [1] * 5
    assert final["tracks"] == [
        {
            "track_id": 1,
            "class": "person",
            "first_frame_id": 0,
            "last_frame_id": 20,
            "first_ms": 0,
            "last_ms": 800,
            "frames": 5,
            "best_conf": 0.9,
        }
    ]
    assert store.document(EVENT)["tracks"] == 1


@pytest.mark.timeout(30)
async def test_a_rerun_with_another_detector_makes_a_second_version_without_a_second_decode(
    world,
):
    """``reinfer --detector hog``: version 2 is ready beside version 1, made by the hog
    detector from the stored frames; the video is neither downloaded nor decoded again."""
    broker, store, objects, flow = world
    before = objects.objects[SETTINGS.bucket_videos, f"detection/{EVENT}.json"]
    extracted = flow.telemetry.total("frames_extracted")
    rerun(broker)
    await broker.run()
    version = store.document(VERSION)
    assert version["status"] == Status.READY.value
    assert (version["version"], version["version_of"], version["detector"]) == (2, EVENT, "hog")
    final = final_json(objects, VERSION)
    assert (final["version"], final["version_of"], final["detector"]) == (2, EVENT, "hog")
    assert final["models"] == ["steady-hog"]
    assert [f["frame_id"] for f in final["frames"]] == FRAME_IDS
    assert final["tracks"][0]["frames"] == 5  # the original's options, tracking included
    assert objects.objects[SETTINGS.bucket_videos, f"detection/{EVENT}.json"] == before
    assert final_json(objects, EVENT)["models"] == ["steady-onnx"]
    assert objects.downloads == [(SETTINGS.bucket_videos, f"input/{EVENT}.mp4")]
    assert flow.telemetry.total("frames_extracted") == extracted
    tasks = [json.loads(m.value) for m in broker.messages(SETTINGS.topic_inference_tasks)]
    rerun_tasks = [t for t in tasks if t["event_id"] == VERSION]
    assert {t["object"] for t in rerun_tasks} == {f"frames/{EVENT}/{f}.jpg" for f in FRAME_IDS}
    assert {t["detector"] for t in rerun_tasks} == {"hog"}
    assert all("detector" not in t for t in tasks if t["event_id"] == EVENT)
    assert store.document(EVENT)["versions"]["v2"]["event_id"] == VERSION


@pytest.mark.timeout(30)
async def test_a_duplicate_rerun_request_makes_no_third_version(world):
    """The same request sent twice, and every message of the topic delivered again: one
    version 2 and no other; a new request id makes version 3."""
    broker, store, _, _ = world
    rerun(broker)
    rerun(broker)
    await broker.run()
    broker.rewind(SETTINGS.topic_outbox_events)
    await broker.run()
    assert sorted(store.documents) == [EVENT, VERSION]
    assert len(store.moved_to(Status.READY)) == 2
    rerun(broker, request_id="r-2")
    await broker.run()
    assert sorted(store.documents) == [EVENT, VERSION, "ev-1--v3"]


@pytest.mark.timeout(30)
async def test_a_detector_no_worker_serves_is_a_clear_error_code_not_a_crash(world):
    """A kind outside DETECTORS_SERVED: each frame answers ``detector_unavailable`` and the
    version fails ``inference_failed``; the worker goes on serving."""
    broker, store, _, _ = world
    rerun(broker, detector="yolo9")
    await broker.run()
    version = store.document(VERSION)
    assert version["status"] == Status.FAILED.value
    assert version["error"]["code"] == "inference_failed"
    errors = {r.error for r in store.stored_results(VERSION)}
    assert len(errors) == 1
    assert errors.pop().startswith("detector_unavailable: this worker serves hog, onnx, not yolo9")


@pytest.mark.timeout(30)
async def test_a_rerun_of_an_unknown_or_unready_event_is_dead_lettered_with_its_code(world):
    """Unknown event: ``unknown_event``; a request without its request id: ``schema``; no
    document is created, and the named event is not failed."""
    broker, store, _, _ = world
    broker.send(
        SETTINGS.topic_outbox_events,
        "nope",
        {"type": "reinfer", "event_id": "nope", "request_id": "r-1"},
    )
    broker.send(SETTINGS.topic_outbox_events, EVENT, {"type": "reinfer", "event_id": EVENT})
    await broker.run()
    dead = broker.messages(SETTINGS.dlq_topic(SETTINGS.topic_outbox_events))
    codes = [dict(m.headers)["error_code"].decode() for m in dead]
    assert sorted(codes) == ["schema", "unknown_event"]
    assert sorted(store.documents) == [EVENT]
    assert store.document(EVENT)["status"] == Status.READY.value


@pytest.mark.timeout(30)
async def test_frames_past_their_retention_are_swept_and_a_rerun_then_fails_frames_expired(world):
    """The sweep deletes ``frames/ev-1/`` once FRAMES_RETENTION_S has passed since the event's
    last write, marks it, and a re-run of it ends failed with ``frames_expired``."""
    broker, store, objects, _ = world
    sweep = services.frames_sweep(
        SETTINGS, store=store, versions=store, objects=objects, telemetry=RecordingTelemetry()
    )
    assert await sweep.run_once() == 0  # within the retention: kept
    later = datetime.now(UTC) + timedelta(seconds=SETTINGS.frames_retention_s + 60)
    assert await sweep.run_once(now=later) == 1
    assert not [k for b, k in objects.objects if k.startswith(f"frames/{EVENT}/")]
    assert store.document(EVENT)["frames_deleted_at"] is not None
    assert await sweep.run_once(now=later) == 0
    rerun(broker)
    await broker.run()
    version = store.document(VERSION)
    assert version["status"] == Status.FAILED.value
    assert version["error"]["code"] == "frames_expired"


@pytest.mark.timeout(30)
async def test_frames_gone_without_the_sweep_also_fail_the_rerun_frames_expired(world):
    """Frames deleted behind the runner's back (a lifecycle rule): the probe finds the first
    one missing before any task is sent."""
    broker, store, objects, _ = world
    for key in [k for k in objects.objects if k[1].startswith(f"frames/{EVENT}/")]:
        del objects.objects[key]
    rerun(broker)
    await broker.run()
    assert store.document(VERSION)["error"]["code"] == "frames_expired"
    assert not [
        m for m in broker.messages(SETTINGS.topic_inference_tasks) if VERSION.encode() in m.key
    ]
