"""The services of the unit tests, built by the composition root on fakes of every port.

Each world makes ``Settings`` with ``load_settings(**overrides)`` and gets its services from
``video_runner.bootstrap.services``, as the processes do, so a unit test exercises production's
wiring (the video handler announces an extraction to the results handler's ``Completion``, the
reaper shares the results' config) and changes only what a setting changes. The messages and
seeded documents the handlers' tests share live here too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from support.fakes import (
    FakeClock,
    FakeConsumedOffsets,
    FakeDetector,
    FakeFrameSource,
    FakeMessage,
    FakeNoticeLog,
    FakeObjectStore,
    FakePredictionStore,
    FakePublisher,
    FakeWebhooks,
    RecordingTelemetry,
    Sent,
)
from video_runner.bootstrap import services
from video_runner.domain.results import FrameResult, ResultCounts
from video_runner.domain.status import Status
from video_runner.domain.task_pages import TaskPageAssembler, TaskRecord
from video_runner.domain.video import ExtractedFrame
from video_runner.errors import InvalidVideo
from video_runner.services.inference import BatchingDetector, InferenceHandler
from video_runner.services.notices import Notices
from video_runner.services.outbox_s3 import OutboxS3
from video_runner.settings import Settings, load_settings

#: What a video world's object store holds at ``videos/input/ev-1.mp4``.
VIDEO = b"\x00\x00\x00\x18ftypmp42 pretend this is a video"
#: Partitions of the results worlds' topics (the fake publisher's, and each event's counters).
PARTITIONS = 4
#: The object of each odd frame's result in ``seed_predictable``.
OBJECT = {"class": "person", "box": [1.0, 2.0, 3.0, 4.0], "conf": 0.75}

# --------------------------------------------------------------------------------------------
# Messages and seeded documents


def extracted_frames(count: int) -> list[ExtractedFrame]:
    """What a frame source yields for a video sampled every 5th frame at 25 fps."""
    return [
        ExtractedFrame(
            frame_id=i * 5, timestamp_ms=i * 200, width=64, height=48, jpeg=b"jpeg-%d" % i
        )
        for i in range(count)
    ]


def outbox_message(document: dict[str, Any] | bytes, *, offset: int = 3) -> FakeMessage:
    """An ``outbox_events`` record holding ``document`` (as JSON) or raw bytes."""
    value = document if isinstance(document, bytes) else json.dumps(document).encode()
    return FakeMessage(topic="outbox_events", partition=1, offset=offset, key=b"k", value=value)


def outbox_event(event_id: str = "ev-1", key: str = "input/ev-1.mp4") -> FakeMessage:
    """The outbox event of a video in the ``videos`` bucket."""
    return outbox_message({"event_id": event_id, "payload": {"bucket": "videos", "object": key}})


def result_message(
    frame_id: int,
    event_id: str = "ev-1",
    *,
    error: str | None = None,
    partition: int = 0,
    offset: int = 0,
) -> FakeMessage:
    """An ``inference_results`` record of one frame: one person, or ``error``."""
    document: dict[str, Any] = {
        "event_id": event_id,
        "frame_id": frame_id,
        "timestamp_ms": frame_id * 40,
        "objects": [{"class": "person", "box": [1, 2, 3, 4], "conf": 0.8}],
        "model": "fake",
    }
    if error is not None:
        document["error"] = error
    return FakeMessage(
        topic="inference_results",
        partition=partition,
        offset=offset,
        key=f"{event_id}/{frame_id}".encode(),
        value=json.dumps(document).encode(),
    )


def spread(messages: Sequence[FakeMessage]) -> list[FakeMessage]:
    """The same messages on the partitions their frame keys would hash to."""
    return [
        FakeMessage(m.topic, hash(m.key) % PARTITIONS, m.offset, m.key, m.value) for m in messages
    ]


async def seed_predictable(
    store: FakePredictionStore,
    event_id: str = "ev-1",
    *,
    bucket: str | None = "videos",
    frames: int = 3,
) -> dict[str, Any]:
    """A predictable event with its task pages and one result per frame, stored out of order;
    frame 0's result is a detector error (without a model, as an older worker sends it)."""
    source = {"object": f"input/{event_id}.mp4", "media_type": "video"}
    if bucket is not None:
        source["bucket"] = bucket
    pages = TaskPageAssembler("frames")
    for ordinal in range(frames):
        record = TaskRecord(ordinal * 5, ordinal * 200, 64, 48, f"f/{ordinal}.jpg", 0, ordinal)
        if (page := pages.add(ordinal, record)) is not None:
            await store.record_task_page(event_id, page)
    for page in pages.finish():
        await store.record_task_page(event_id, page)
    results = [
        FrameResult(
            frame_id=o * 5,
            timestamp_ms=o * 200,
            objects=[OBJECT] if o % 2 else [],
            model="yolov4-tiny@abc.c1",
        )
        for o in range(1, frames)
    ]
    results.append(FrameResult(frame_id=0, timestamp_ms=0, error="bad_image"))
    await store.save_results([(event_id, r) for r in reversed(results)])
    await store.add_progress(event_id, 0, ResultCounts(frames, 1))
    return store.put(
        event_id,
        Status.PREDICTABLE,
        source=source,
        video={"width": 64, "height": 48, "fps": 25.0},
        sampling={"every_n": 5},
        preprocessing={"blur_ksize": 3, "alpha": 1.3, "beta": 5.0, "jpeg_quality": 95},
        total_frames=frames,
        failed_frames=1,
        results_partitions=1,
    )


# --------------------------------------------------------------------------------------------
# Worlds


class VideoWorld:
    """The runner's video handler on fakes, with a video at ``videos/input/ev-1.mp4``, its
    completion notices going to a fake notice log and fake webhooks.

    ``settings`` are ``Settings`` fields (``max_video_bytes``, ``webhook_allowed_hosts``, ...);
    ``probe_error``, ``extract_error`` and ``hold_after`` go to the frame source.
    """

    def __init__(
        self,
        tmp_path: Path,
        frames: Sequence[ExtractedFrame],
        *,
        probe_error: InvalidVideo | None = None,
        extract_error: Exception | None = None,
        hold_after: int | None = None,
        **settings: Any,
    ) -> None:
        self.work_dir = tmp_path / "work"
        self.settings = load_settings(
            **{"work_dir": str(self.work_dir), "upload_concurrency": 3, **settings}
        )
        self.store = FakePredictionStore()
        self.objects = FakeObjectStore()
        self.objects.objects["videos", "input/ev-1.mp4"] = VIDEO
        self.publisher = FakePublisher()
        self.source = FakeFrameSource(
            frames, probe_error=probe_error, extract_error=extract_error, hold_after=hold_after
        )
        self.telemetry = RecordingTelemetry()
        self.notice_log = FakeNoticeLog()
        self.webhooks = FakeWebhooks()
        self.notices = services.completion_notices(
            self.settings,
            store=self.store,
            notice_log=self.notice_log,
            webhooks=self.webhooks,
            telemetry=self.telemetry,
        )
        self.runner = services.runner_services(
            self.settings,
            store=self.store,
            objects=self.objects,
            publisher=self.publisher,
            frames=self.source,
            offsets=FakeConsumedOffsets(),
            telemetry=self.telemetry,
            notices=self.notices,
        )
        self.path = self.runner.video

    def tasks(self) -> list[Sent]:
        return self.publisher.on(self.settings.topic_inference_tasks)

    def dead_letters(self) -> list[Sent]:
        return self.publisher.on(self.settings.dlq_topic(self.settings.topic_outbox_events))

    def extractions(self) -> float:
        """How many extractions published every task and were announced to the completion
        check (``events_extracted``, counted just before the announcement)."""
        return self.telemetry.total("events_extracted")


class ResultsWorld:
    """The runner's results handler, reconciler and reaper on fakes, a clock the test moves.

    ``settings`` are ``Settings`` fields; ``max_failed_frame_ratio`` is 0 unless a test sets
    it, so one failed frame is then enough to fail an event.
    """

    def __init__(self, *, sharing: ResultsWorld | None = None, **settings: Any) -> None:
        """``sharing``: another runner replica on that world's store, broker and offsets."""
        self.clock: FakeClock = FakeClock() if sharing is None else sharing.clock
        self.store: FakePredictionStore = (
            FakePredictionStore(clock=self.clock) if sharing is None else sharing.store
        )
        self.publisher: FakePublisher = (
            FakePublisher(partition_count=PARTITIONS) if sharing is None else sharing.publisher
        )
        self.offsets: FakeConsumedOffsets = (
            FakeConsumedOffsets() if sharing is None else sharing.offsets
        )
        self.telemetry = RecordingTelemetry()
        self._overrides = settings
        self.settings: Settings = load_settings(**{"max_failed_frame_ratio": 0.0, **settings})
        runner = services.runner_services(
            self.settings,
            store=self.store,
            objects=FakeObjectStore(),
            publisher=self.publisher,
            frames=FakeFrameSource(),
            offsets=self.offsets,
            telemetry=self.telemetry,
        )
        self.completion = runner.completion
        self.path = runner.results
        self.reconciler = runner.reconciler
        self.reaper = runner.reaper

    def replica(self) -> ResultsWorld:
        """Another runner replica, with the same settings, on this world's shared state."""
        return ResultsWorld(sharing=self, **self._overrides)

    async def extracted(
        self, event_id: str = "ev-1", frames: int = 5, *, total: bool = True
    ) -> None:
        """An event whose tasks the video path published (frame ids 0, 5, 10...), recorded in
        pages with the offsets the broker gave them; total_frames set if ``total``."""
        messages = [(f"{event_id}/{i * 5}", {"frame_id": i * 5}) for i in range(frames)]
        deliveries = await self.publisher.publish_many(
            self.settings.topic_inference_tasks, messages
        )
        pages = TaskPageAssembler("frames")
        for ordinal, delivery in enumerate(deliveries):
            record = TaskRecord(
                ordinal * 5,
                ordinal * 200,
                64,
                48,
                f"frames/{event_id}/{ordinal * 5}.jpg",
                delivery.partition,
                delivery.offset,
            )
            if (page := pages.add(ordinal, record)) is not None:
                await self.store.record_task_page(event_id, page)
        for page in pages.finish():
            await self.store.record_task_page(event_id, page)
        self.store.put(
            event_id,
            Status.PROCESSING,
            frames_published=frames,
            total_frames=frames if total else None,
            sampling={"every_n": 5},
            results_partitions=PARTITIONS,
        )

    def notices(self) -> list[Sent]:
        return self.publisher.on(self.settings.topic_predictable_events)

    def republished(self) -> list[Sent]:
        return [
            s
            for s in self.publisher.on(self.settings.topic_inference_tasks)
            if s.value.get("attempt")
        ]


class InferenceWorld:
    """An inference handler and its batching detector on fakes; ``close`` when done.

    ``settings`` are ``Settings`` fields; batches hold up to four frames unless a test says.
    """

    def __init__(self, *, detector: FakeDetector | None = None, **settings: Any) -> None:
        self.settings = load_settings(**{"inference_batch_size": 4, **settings})
        self.objects = FakeObjectStore()
        self.publisher = FakePublisher()
        self.telemetry = RecordingTelemetry()
        self.detector = detector or FakeDetector(name="hog-v1")
        self.batching: BatchingDetector = services.batching_detector(self.settings, self.detector)
        self.handler: InferenceHandler = services.inference_handler(
            self.settings,
            objects=self.objects,
            publisher=self.publisher,
            detector=self.batching,
            telemetry=self.telemetry,
        )

    def results(self) -> list[Sent]:
        return self.publisher.on(self.settings.topic_inference_results)

    def dead_letters(self) -> list[Sent]:
        return self.publisher.on(self.settings.dlq_topic(self.settings.topic_inference_tasks))

    async def close(self) -> None:
        await self.batching.close()


def outbox_worker(
    store: FakePredictionStore,
    objects: FakeObjectStore,
    tmp_path: Path,
    *,
    notices: Notices | None = None,
    **settings: Any,
) -> OutboxS3:
    """An outbox-S3 worker on ``store`` and ``objects``, announcing through ``notices`` if
    given; ``settings`` are ``Settings`` fields."""
    return services.outbox_service(
        load_settings(**{"work_dir": str(tmp_path), **settings}),
        store=store,
        objects=objects,
        telemetry=RecordingTelemetry(),
        notices=notices,
    )
