"""Adapters -> services -> runtime: the runner, inference and outbox-S3 processes, each built as
a ``Worker`` of its start-up steps, consumers and periodic jobs."""

from __future__ import annotations

import asyncio
import logging

from video_runner.adapters.kafka import GroupOffsets, KafkaNoticeLog, KafkaPublisher
from video_runner.adapters.metrics import PrometheusTelemetry
from video_runner.adapters.webhook import HttpWebhookSender
from video_runner.bootstrap import configs
from video_runner.bootstrap.clients import (
    consumer_loop,
    detector,
    ensure_topics_of,
    frame_source,
    kafka_connection,
    object_store,
    prediction_store,
    trackers,
)
from video_runner.bootstrap.services import (
    batching_detector,
    completion_notices,
    detector_pool,
    frames_sweep,
    inference_handler,
    outbox_events,
    outbox_service,
    runner_services,
)
from video_runner.ports import Detector, FrameSource
from video_runner.runtime import Check, Consumer, PeriodicJob, Service, Step, Worker
from video_runner.runtime.worker import LAG_INTERVAL_S, Closer
from video_runner.services.detection_reads import DetectionReader
from video_runner.services.track_reads import TrackReader
from video_runner.services.work_dir import sweep_work_dir
from video_runner.settings import Settings

log = logging.getLogger(__name__)


class _NoticeSending:
    """What the runner and the outbox-S3 worker both hold: the store, S3, a producer, and the
    completion notices with their webhooks that either may send (docs/decisions/0008)."""

    def __init__(self, settings: Settings, role: str, publisher: KafkaPublisher) -> None:
        self.settings = settings
        self.telemetry = PrometheusTelemetry()
        self.store = prediction_store(settings)
        self.objects = object_store(settings)
        self.publisher = publisher
        self.webhooks = HttpWebhookSender(settings.webhook_timeout_s)
        self.notices = completion_notices(
            settings,
            store=self.store,
            notice_log=KafkaNoticeLog(kafka_connection(settings, role), publisher),
            webhooks=self.webhooks,
            telemetry=self.telemetry,
        )

    def _checks(self) -> dict[str, Check]:
        return {"kafka": self.publisher.ping, "s3": self.objects.ping, "mongodb": self.store.ping}

    def _closers(self) -> list[Closer]:
        # Notices first: their webhooks and notice log still use the producer.
        return [
            self.notices.close,
            self.webhooks.close,
            self.publisher.stop,
            self.store.close,
            self.objects.close,
        ]


class Runner(_NoticeSending):
    """The runner service: video path, results path, reconciler and reaper in one process."""

    def __init__(self, settings: Settings, *, frames: FrameSource | None = None) -> None:
        """``frames`` replaces the frame source the settings choose (a test's stand-in)."""
        # The runner sends explicit batches (publish_many): lingering would only add latency.
        super().__init__(
            settings, "runner", KafkaPublisher(kafka_connection(settings, "runner"), linger_ms=0)
        )
        self.offsets = GroupOffsets(kafka_connection(settings, "runner"))
        own = frame_source(settings)
        self.services = runner_services(
            settings,
            store=self.store,
            objects=self.objects,
            publisher=self.publisher,
            frames=own if frames is None else frames,
            offsets=self.offsets,
            telemetry=self.telemetry,
            notices=self.notices,
            # A stand-in frame source decodes whole videos only.
            segment_source=own if frames is None else None,
            ranges=self.objects,
        )
        self.completion = self.services.completion
        self.outbox_events = outbox_events(
            settings,
            self.services,
            store=self.store,
            versions=self.store,
            objects=self.objects,
            results=self.objects,
            publisher=self.publisher,
            telemetry=self.telemetry,
            notices=self.notices,
        )
        self.events_loop = consumer_loop(
            settings,
            "runner",
            topic=settings.topic_outbox_events,
            group_id=settings.group_runner,
            handler=self.outbox_events,
            max_in_flight=settings.max_videos_in_flight,
        )
        self.results_loop = consumer_loop(
            settings,
            "runner",
            topic=settings.topic_inference_results,
            group_id=settings.group_results,
            handler=self.services.results,
            max_in_flight=1,
            batch_size=settings.results_batch_size,
        )
        segments = self.services.segments
        # Segments take the same slots as videos: a runner decodes this many at once.
        self.segments_loop = (
            None
            if segments is None
            else consumer_loop(
                settings,
                "runner",
                topic=settings.topic_video_segments,
                group_id=settings.group_segments,
                handler=segments,
                max_in_flight=settings.max_videos_in_flight,
            )
        )
        loops = [self.events_loop, self.results_loop]
        loops += [] if self.segments_loop is None else [self.segments_loop]
        self.service = Service(
            role="runner",
            settings=settings,
            telemetry=self.telemetry,
            checks=self._checks(),
            store=self.store,
            loops=loops,
            dashboard=(
                DetectionReader(self.store, self.objects, settings.bucket_frames)
                if settings.dashboard_enabled
                else None
            ),
            tracks=TrackReader(self.objects) if settings.dashboard_enabled else None,
        )
        self.runtime = Worker(
            self.service,
            retry=configs.retry_policy(settings),
            steps=[Step("dependencies", self._prepare)],
            consumers=[
                Consumer(self.events_loop, settings.shutdown_drain_s),
                Consumer(self.results_loop, 3.0),
                *[Consumer(loop, settings.shutdown_drain_s) for loop in loops[2:]],
            ],
            jobs=[
                PeriodicJob(
                    "reconciler", settings.reaper_interval_s, self.services.reconciler.run_once
                ),
                PeriodicJob("reaper", settings.reaper_interval_s, self.services.reaper.run_once),
                PeriodicJob("in-progress", LAG_INTERVAL_S, self._report_in_progress),
            ],
            closers=[self.offsets.close, *self._closers()],
            started_log={
                "groups": [settings.group_runner, settings.group_results, settings.group_segments]
            },
        )

    async def _prepare(self) -> None:
        swept = sweep_work_dir(configs.work_dir(self.settings))
        if swept:
            log.info("work directory swept", extra={"files": swept})
        await self.store.ensure_indexes()
        await self.objects.ping()
        await self.objects.ensure_bucket(self.settings.bucket_frames)
        await ensure_topics_of(self.settings, "runner")
        await self.publisher.start()

    async def _report_in_progress(self) -> None:
        self.telemetry.gauge("videos_in_progress", self.events_loop.stats.in_flight)
        self.telemetry.gauge("results_in_progress", self.results_loop.stats.in_flight)
        if self.segments_loop is not None:
            self.telemetry.gauge("segments_in_progress", self.segments_loop.stats.in_flight)

    async def run(self, stop: asyncio.Event) -> None:
        await self.runtime.run(stop)


class Inference:
    """The inference worker process: ``inference_tasks`` -> detector -> ``inference_results``."""

    def __init__(
        self,
        settings: Settings,
        *,
        max_in_flight: int | None = None,
        detector_override: Detector | None = None,
    ) -> None:
        """``detector_override`` replaces the detector the settings choose (a test's stand-in)."""
        self.settings = settings
        self.telemetry = PrometheusTelemetry()
        self.objects = object_store(settings)
        self.publisher = KafkaPublisher(kafka_connection(settings, "inference"))
        self.detector = batching_detector(
            settings, detector(settings) if detector_override is None else detector_override
        )
        self.detectors = detector_pool(
            settings,
            self.detector,
            build=lambda kind: detector(settings.model_copy(update={"detector": kind})),
        )
        self.handler = inference_handler(
            settings,
            objects=self.objects,
            publisher=self.publisher,
            detector=self.detector,
            telemetry=self.telemetry,
            detectors=self.detectors,
        )
        self.loop = consumer_loop(
            settings,
            "inference",
            topic=settings.topic_inference_tasks,
            group_id=settings.group_inference,
            handler=self.handler,
            max_in_flight=max_in_flight or settings.inference_batch_size * 2,
        )
        self.service = Service(
            role="inference",
            settings=settings,
            telemetry=self.telemetry,
            checks={"kafka": self.publisher.ping, "s3": self.objects.ping},
            loops=[self.loop],
        )
        self.runtime = Worker(
            self.service,
            retry=configs.retry_policy(settings),
            steps=[Step("dependencies", self._prepare)],
            consumers=[Consumer(self.loop, 5.0)],
            closers=[self.detectors.close, self.publisher.stop, self.objects.close],
            started_log={"detector": self.detector.name},
        )

    async def _prepare(self) -> None:
        await self.objects.ping()
        await ensure_topics_of(self.settings, "inference")
        await self.publisher.start()

    async def run(self, stop: asyncio.Event) -> None:
        await self.runtime.run(stop)


class Outbox(_NoticeSending):
    """The outbox-S3 worker process: ``predictable`` -> final JSON in S3 -> ``ready``."""

    def __init__(self, settings: Settings) -> None:
        # It produces completion notices: ``ready`` ones, and the sweep's repairs of any.
        super().__init__(settings, "outbox", KafkaPublisher(kafka_connection(settings, "outbox")))
        self.outbox = outbox_service(
            settings,
            store=self.store,
            objects=self.objects,
            telemetry=self.telemetry,
            notices=self.notices,
            trackers=trackers(settings),
        )
        self.frames_sweep = frames_sweep(
            settings,
            store=self.store,
            versions=self.store,
            objects=self.objects,
            telemetry=self.telemetry,
        )
        self.loop = consumer_loop(
            settings,
            "outbox",
            topic=settings.topic_predictable_events,
            group_id=settings.group_outbox,
            handler=self.outbox,
            max_in_flight=4,
        )
        self.service = Service(
            role="outbox-s3",
            settings=settings,
            telemetry=self.telemetry,
            checks=self._checks(),
            store=self.store,
            loops=[self.loop],
        )
        self.runtime = Worker(
            self.service,
            retry=configs.retry_policy(settings),
            steps=[Step("dependencies", self._prepare)],
            consumers=[Consumer(self.loop, 10.0)],
            jobs=[
                PeriodicJob("outbox-sweep", settings.outbox_sweep_interval_s, self.outbox.sweep),
                PeriodicJob(
                    "frames-retention", settings.frames_sweep_interval_s, self.frames_sweep.run_once
                ),
            ],
            # The early merges first: they read the store the closers after them close.
            closers=[self.outbox.close, *self._closers()],
        )

    async def _prepare(self) -> None:
        await self.store.ping()
        await self.objects.ping()
        await ensure_topics_of(self.settings, "outbox")
        await self.publisher.start()
        configs.work_dir(self.settings).mkdir(parents=True, exist_ok=True)

    async def run(self, stop: asyncio.Event) -> None:
        await self.runtime.run(stop)
