"""Settings and ports -> the services of each process: the one place they are wired.

Every process (``bootstrap.processes``) and every test builds its services here: a process
passes the adapters it made from settings, a test passes fakes or an in-memory broker for any
port. Nothing here imports an adapter, so the wiring a test exercises is the production wiring.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from video_runner.bootstrap import configs
from video_runner.ports import (
    ConsumedOffsets,
    Detector,
    FrameSource,
    NoticeLog,
    ObjectRanges,
    ObjectStore,
    ObjectStream,
    ObjectSweeper,
    PredictionStore,
    RawPublisher,
    SegmentSource,
    Telemetry,
    TrackerFactory,
    VersionStore,
    WebhookSender,
)
from video_runner.services.detector_pool import DetectorPool
from video_runner.services.frame_retention import FramesSweep
from video_runner.services.inference import BatchingDetector, InferenceHandler
from video_runner.services.notices import Notices
from video_runner.services.outbox_router import OutboxEvents
from video_runner.services.outbox_s3 import OutboxS3
from video_runner.services.reinfer import ReinferPath
from video_runner.services.repair import Reaper, Reconciler
from video_runner.services.results_handler import Completion, ResultsHandler
from video_runner.services.video_handler import VideoHandler
from video_runner.services.video_segments import SegmentHandler, SegmentPlanner
from video_runner.settings import Settings


@dataclass(frozen=True, slots=True)
class RunnerServices:
    """The runner's handlers and repair jobs, sharing one ``Completion``."""

    completion: Completion
    video: VideoHandler
    #: The handler of ``video_segments`` (None: this runner cuts no video into segments).
    segments: SegmentHandler | None
    results: ResultsHandler
    reconciler: Reconciler
    reaper: Reaper


def runner_services(
    settings: Settings,
    *,
    store: PredictionStore,
    objects: ObjectStore,
    publisher: RawPublisher,
    frames: FrameSource,
    offsets: ConsumedOffsets,
    telemetry: Telemetry,
    notices: Notices | None = None,
    segment_source: SegmentSource | None = None,
    ranges: ObjectRanges | None = None,
) -> RunnerServices:
    """``segment_source`` and ``ranges`` (the frame source and the object store, most often)
    let the runner cut long videos into segments; without them it decodes every video whole."""
    results = configs.results_config(settings)
    completion = Completion(results, store, publisher, telemetry, notices=notices)
    cut = configs.segments_config(settings)
    planner = None
    if segment_source is not None and ranges is not None:
        planner = SegmentPlanner(
            cut,
            store=store,
            ranges=ranges,
            publisher=publisher,
            source=segment_source,
            telemetry=telemetry,
        )
    video = VideoHandler(
        configs.video_handler_config(settings),
        store=store,
        objects=objects,
        publisher=publisher,
        frames=frames,
        telemetry=telemetry,
        on_extracted=completion.extracted,
        notices=notices,
        segments=planner,
    )
    segments = None
    if segment_source is not None and ranges is not None:
        segments = SegmentHandler(
            cut,
            default_bucket=settings.bucket_videos,
            allowed_buckets=settings.source_buckets,
            max_message_bytes=settings.max_message_bytes,
            store=store,
            objects=objects,
            ranges=ranges,
            publisher=publisher,
            source=segment_source,
            telemetry=telemetry,
            refusals=video.refusals,
            on_extracted=completion.extracted,
        )
    return RunnerServices(
        completion=completion,
        video=video,
        segments=segments,
        results=ResultsHandler(
            results, store=store, publisher=publisher, completion=completion, telemetry=telemetry
        ),
        reconciler=Reconciler(results, store, completion),
        reaper=Reaper(
            results,
            store=store,
            publisher=publisher,
            offsets=offsets,
            telemetry=telemetry,
            notices=notices,
        ),
    )


def outbox_events(
    settings: Settings,
    runner: RunnerServices,
    *,
    store: PredictionStore,
    versions: VersionStore,
    objects: ObjectStore,
    results: ObjectStream,
    publisher: RawPublisher,
    telemetry: Telemetry,
    notices: Notices | None = None,
) -> OutboxEvents:
    """The runner's handler of ``outbox_events``: videos to the video handler, ``reinfer``
    messages to the re-run path, which announces its published tasks to the same completion."""
    reruns = ReinferPath(
        configs.reinfer_config(settings),
        store=store,
        versions=versions,
        objects=objects,
        results=results,
        publisher=publisher,
        telemetry=telemetry,
        on_extracted=runner.completion.extracted,
        notices=notices,
    )
    return OutboxEvents(runner.video, reruns, max_message_bytes=settings.max_message_bytes)


def batching_detector(settings: Settings, detector: Detector) -> BatchingDetector:
    """One model call per batch of frames from concurrent tasks (``INFERENCE_BATCH_SIZE``)."""
    return BatchingDetector(detector, batch_size=settings.inference_batch_size)


def detector_pool(
    settings: Settings, own: BatchingDetector, build: Callable[[str], Detector]
) -> DetectorPool:
    """An inference worker's detectors: ``own``, and the kinds of ``DETECTORS_SERVED``, made by
    ``build`` the first time a task asks for one."""
    return DetectorPool(
        settings.detector,
        own,
        build=lambda kind: batching_detector(settings, build(kind)),
        served=settings.served_detectors,
    )


def inference_handler(
    settings: Settings,
    *,
    objects: ObjectStore,
    publisher: RawPublisher,
    detector: BatchingDetector,
    telemetry: Telemetry,
    detectors: DetectorPool | None = None,
) -> InferenceHandler:
    """``detectors`` serves the tasks that name another detector; without it every task runs on
    ``detector``."""
    return InferenceHandler(
        configs.inference_config(settings),
        objects=objects,
        publisher=publisher,
        detector=detector,
        telemetry=telemetry,
        pick=None if detectors is None else detectors.pick,
    )


def outbox_service(
    settings: Settings,
    *,
    store: PredictionStore,
    objects: ObjectStore,
    telemetry: Telemetry,
    notices: Notices | None = None,
    trackers: TrackerFactory | None = None,
) -> OutboxS3:
    """``trackers`` makes the tracker of each video asking for tracks; without it none is."""
    return OutboxS3(
        configs.outbox_config(settings),
        store=store,
        objects=objects,
        telemetry=telemetry,
        notices=notices,
        trackers=trackers,
    )


def frames_sweep(
    settings: Settings,
    *,
    store: PredictionStore,
    versions: VersionStore,
    objects: ObjectSweeper,
    telemetry: Telemetry,
) -> FramesSweep:
    """The sweep of frames that ``FRAMES_RETENTION_S`` no longer keeps."""
    return FramesSweep(
        configs.retention_config(settings),
        store=store,
        versions=versions,
        objects=objects,
        telemetry=telemetry,
    )


def completion_notices(
    settings: Settings,
    *,
    store: PredictionStore,
    notice_log: NoticeLog,
    webhooks: WebhookSender | None,
    telemetry: Telemetry,
) -> Notices:
    """Completion notices on ``prediction_events`` and webhooks (docs/decisions/0008)."""
    return Notices(
        configs.notice_config(settings),
        store=store,
        notice_log=notice_log,
        webhooks=webhooks,
        telemetry=telemetry,
    )
