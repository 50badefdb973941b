"""The whole flow in memory: a real small video from its event to ``ready``, through the runner's
video and results paths, an inference worker and an outbox-S3 worker joined by an in-memory broker,
with the configs production makes from default settings and a real frame source."""

from __future__ import annotations

import json

import pytest

from support.broker import InMemoryBroker
from support.fakes import (
    FakeConsumedOffsets,
    FakeDetector,
    FakeObjectStore,
    FakePredictionStore,
    RecordingTelemetry,
)
from support.videos import make_video
from video_runner import bootstrap
from video_runner.bootstrap import services
from video_runner.domain.status import Status
from video_runner.ports import Message
from video_runner.services.inference import BatchingDetector
from video_runner.settings import load_settings

SETTINGS = load_settings()
EVENT = "ev-1"
#: 23 frames sampled every 5th: frames 0, 5, 10, 15 and 20.
FRAME_IDS = [0, 5, 10, 15, 20]


class Crashed(Exception):
    """A service process dying: raised past the broker, so the message is never committed."""


class CrashAfterHandling:
    """Handles the first message, then dies before its commit; the replica started after it
    gets the message again."""

    def __init__(self, handler) -> None:
        self._handler = handler
        self.crashed = False

    async def handle(self, message: Message) -> None:
        await self._handler.handle(message)
        if not self.crashed:
            self.crashed = True
            raise Crashed(message.topic)

    async def dead_letter(self, message, error) -> None:
        await self._handler.dead_letter(message, error)


class Services:
    """One replica of each service on shared state, built by the composition root with the
    broker, the store and the object store in place of Kafka, MongoDB and S3."""

    def __init__(self, tmp_path, broker, store, objects, detector: BatchingDetector) -> None:
        settings = load_settings(work_dir=str(tmp_path / "work"))
        telemetry = RecordingTelemetry()
        runner = services.runner_services(
            settings,
            store=store,
            objects=objects,
            publisher=broker,
            frames=bootstrap.frame_source(settings),
            offsets=FakeConsumedOffsets(),
            telemetry=telemetry,
        )
        inference = services.inference_handler(
            settings, objects=objects, publisher=broker, detector=detector, telemetry=telemetry
        )
        outbox = services.outbox_service(
            settings, store=store, objects=objects, telemetry=telemetry
        )
        self.handlers = {
            SETTINGS.topic_outbox_events: runner.video,
            SETTINGS.topic_inference_tasks: inference,
            SETTINGS.topic_inference_results: runner.results,
            SETTINGS.topic_predictable_events: outbox,
        }

    def subscribe(self, broker: InMemoryBroker, wrap=None) -> None:
        for topic, handler in self.handlers.items():
            broker.subscribe(topic, wrap(topic, handler) if wrap else handler)


@pytest.fixture
async def world(tmp_path):
    video = make_video(tmp_path / "video.mp4", frames=23, width=64, height=48)
    objects = FakeObjectStore()
    objects.objects[SETTINGS.bucket_videos, f"input/{EVENT}.mp4"] = video.read_bytes()
    detector = BatchingDetector(FakeDetector(), batch_size=4, max_wait_s=0.005)
    broker = InMemoryBroker()
    broker.send(
        SETTINGS.topic_outbox_events,
        EVENT,
        {"event_id": EVENT, "payload": {"bucket": "videos", "object": f"input/{EVENT}.mp4"}},
    )
    yield tmp_path, broker, FakePredictionStore(), objects, detector
    await detector.close()


def final_json(objects: FakeObjectStore) -> dict:
    return json.loads(objects.objects[SETTINGS.bucket_videos, f"detection/{EVENT}.json"])


def assert_ready_once_with_every_frame(broker, store, objects) -> None:
    document = store.document(EVENT)
    assert document["status"] == Status.READY.value
    assert len(store.moved_to(Status.READY)) == 1
    final = final_json(objects)
    assert [frame["frame_id"] for frame in final["frames"]] == FRAME_IDS
    assert all(len(frame["objects"]) == 1 for frame in final["frames"])
    assert final["models"] == ["fake-detector"]
    # One extraction: one task per sampled frame, whatever was delivered twice.
    tasks = broker.messages(SETTINGS.topic_inference_tasks)
    assert sorted(json.loads(t.value)["frame_id"] for t in tasks) == FRAME_IDS


@pytest.mark.timeout(30)
async def test_a_real_video_goes_from_its_event_to_ready_in_memory(world):
    """Event -> five tasks -> five results -> predictable -> the final JSON in S3 and ready."""
    tmp_path, broker, store, objects, detector = world
    Services(tmp_path, broker, store, objects, detector).subscribe(broker)
    await broker.run()
    assert_ready_once_with_every_frame(broker, store, objects)
    assert len(broker.messages(SETTINGS.topic_inference_results)) == len(FRAME_IDS)
    notices = broker.messages(SETTINGS.topic_predictable_events)
    # The runner's "published" (a merge may start), then its "predictable" (write the JSON).
    assert [json.loads(n.value)["status"] for n in notices] == ["published", "predictable"]


@pytest.mark.timeout(30)
async def test_every_message_delivered_twice_changes_nothing(world):
    """The event sent twice, then every topic consumed again from its start: still one
    extraction, one stored result per frame, one move to ready and the same final JSON."""
    tmp_path, broker, store, objects, detector = world
    broker.send(
        SETTINGS.topic_outbox_events,
        EVENT,
        {"event_id": EVENT, "payload": {"bucket": "videos", "object": f"input/{EVENT}.mp4"}},
    )
    Services(tmp_path, broker, store, objects, detector).subscribe(broker)
    await broker.run()
    first = objects.objects[SETTINGS.bucket_videos, f"detection/{EVENT}.json"]
    for topic in list(Services(tmp_path, broker, store, objects, detector).handlers):
        broker.rewind(topic)
    await broker.run()
    assert_ready_once_with_every_frame(broker, store, objects)
    assert objects.objects[SETTINGS.bucket_videos, f"detection/{EVENT}.json"] == first
    assert store.document(EVENT)["results_received"] == len(FRAME_IDS)


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "topic",
    [
        SETTINGS.topic_outbox_events,
        SETTINGS.topic_inference_tasks,
        SETTINGS.topic_inference_results,
        SETTINGS.topic_predictable_events,
    ],
)
async def test_a_service_that_dies_after_its_work_and_before_its_commit_loses_and_doubles_nothing(
    world, topic
):
    """The consumer of ``topic`` dies right after handling its first message; new replicas
    of every service, on the same state, get that message again and finish the video."""
    tmp_path, broker, store, objects, detector = world
    crashing = Services(tmp_path, broker, store, objects, detector)
    crashing.subscribe(broker, lambda t, h: CrashAfterHandling(h) if t == topic else h)
    with pytest.raises(Crashed):
        await broker.run()
    Services(tmp_path, broker, store, objects, detector).subscribe(broker)
    await broker.run()
    assert_ready_once_with_every_frame(broker, store, objects)
    assert store.document(EVENT)["results_received"] == len(FRAME_IDS)
