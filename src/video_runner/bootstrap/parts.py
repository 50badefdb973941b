"""Parts of the processes built from the settings and a process's own clients: completion
notices, the ``outbox_events`` router with its re-run path, an inference worker's detectors,
the frames retention job. Each process (``processes.py``) then stays one read."""

from __future__ import annotations

from typing import Protocol

from video_runner.adapters.kafka import KafkaNoticeLog, KafkaPublisher
from video_runner.adapters.metrics import PrometheusTelemetry
from video_runner.adapters.mongo import MongoPredictionStore
from video_runner.adapters.s3 import S3ObjectStore
from video_runner.adapters.webhook import HttpWebhookSender
from video_runner.bootstrap import configs
from video_runner.bootstrap.clients import detector, kafka_connection
from video_runner.runtime import PeriodicJob
from video_runner.services.detector_pool import DetectorPool
from video_runner.services.frame_retention import FramesSweep
from video_runner.services.inference import BatchingDetector
from video_runner.services.notices import Notices
from video_runner.services.outbox_router import OutboxEvents
from video_runner.services.reinfer import ReinferPath
from video_runner.services.results_path import Completion
from video_runner.services.video_path import VideoPath
from video_runner.settings import Settings


class _Shared(Protocol):
    """What the runner and the outbox-S3 processes hold and lend to the parts built here."""

    store: MongoPredictionStore
    objects: S3ObjectStore
    telemetry: PrometheusTelemetry
    notices: Notices


class _RunnerParts(_Shared, Protocol):
    publisher: KafkaPublisher
    completion: Completion
    video_path: VideoPath


def outbox_events(settings: Settings, runner: _RunnerParts) -> OutboxEvents:
    """The runner's handler of ``outbox_events``: videos to the video path, ``reinfer``
    messages to the re-run path (the store and S3 serve both of its ports)."""
    reruns = ReinferPath(
        configs.reinfer_config(settings),
        store=runner.store,
        versions=runner.store,
        objects=runner.objects,
        results=runner.objects,
        publisher=runner.publisher,
        telemetry=runner.telemetry,
        on_extracted=runner.completion.check,
        notices=runner.notices,
    )
    return OutboxEvents(runner.video_path, reruns, max_message_bytes=settings.max_message_bytes)


def detector_pool(settings: Settings, own: BatchingDetector) -> DetectorPool:
    """An inference worker's detectors: ``own``, and the kinds of ``DETECTORS_SERVED`` built
    from the same settings the first time a task asks for one."""

    def build(kind: str) -> BatchingDetector:
        return BatchingDetector(
            detector(settings.model_copy(update={"detector": kind})),
            batch_size=settings.inference_batch_size,
        )

    return DetectorPool(settings.detector, own, build=build, served=settings.served_detectors)


def frames_retention_job(settings: Settings, outbox: _Shared) -> PeriodicJob:
    """The outbox-S3 worker's sweep of frames that ``FRAMES_RETENTION_S`` no longer keeps."""
    sweep = FramesSweep(
        configs.retention_config(settings),
        store=outbox.store,
        versions=outbox.store,
        objects=outbox.objects,
        telemetry=outbox.telemetry,
    )
    return PeriodicJob("frames-retention", settings.frames_sweep_interval_s, sweep.run_once)


def completion_notices(
    settings: Settings,
    *,
    store: MongoPredictionStore,
    publisher: KafkaPublisher,
    webhooks: HttpWebhookSender,
    telemetry: PrometheusTelemetry,
    role: str,
) -> Notices:
    """Completion notices on ``prediction_events`` and webhooks (docs/decisions/0008)."""
    return Notices(
        configs.notice_config(settings),
        store=store,
        notice_log=KafkaNoticeLog(kafka_connection(settings, role), publisher),
        webhooks=webhooks,
        telemetry=telemetry,
    )
