"""The runner's video path: an ``outbox_events`` message in, frame tasks on ``inference_tasks`` out.

Per event: create the prediction document, stream the video from S3 to a local file, decode and
preprocess every N-th frame off the event loop, upload each JPEG, publish one task per frame
(keyed by frame, so one video spreads over every partition and every inference worker), record
where Kafka stored each task in page documents, then set ``total_frames``. Everything is
idempotent, so a redelivered event redoes the same work and changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from video_runner.contracts import (
    OptionsRejected,
    VideoEvent,
    event_id_hint,
    parse_video_event,
)
from video_runner.contracts.options import EventOptions, callback_refusal
from video_runner.domain.params import Preprocessing, Sampling, VideoLimits
from video_runner.domain.sampling import SamplingPlan
from video_runner.errors import ErrorCode, InvalidVideo, PermanentError
from video_runner.ports import (
    FrameSource,
    Message,
    ObjectStore,
    PredictionStore,
    RawPublisher,
    Telemetry,
)
from video_runner.services.dead_letters import DeadLetters
from video_runner.services.event_refusals import EventRefusals
from video_runner.services.extraction_claim import ExtractionClaims
from video_runner.services.frame_upload import PUBLISH_BATCH, FrameUpload, upload_and_publish
from video_runner.services.notices import Notices
from video_runner.services.task_publication import Publication, PublishTo
from video_runner.services.video_segments import SegmentPlanner

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class VideoHandlerConfig:
    videos_bucket: str
    frames_bucket: str
    tasks_topic: str
    results_topic: str
    dlq_suffix: str
    sampling: Sampling
    preprocessing: Preprocessing
    limits: VideoLimits
    work_dir: Path
    upload_concurrency: int
    max_message_bytes: int
    dlq_max_bytes: int
    allowed_buckets: frozenset[str] | None
    #: Hosts an event's ``callback_url`` may name (``WEBHOOK_ALLOWED_HOSTS``); others are
    #: ``bad_options``.
    webhook_hosts: frozenset[str]
    #: A copy waiting for another copy's extraction takes over after this long without its
    #: heartbeat (``EXTRACTION_STALE_S``).
    extraction_stale_s: float
    #: How long a batch of tasks waits for more uploaded frames (``PUBLISH_LINGER_MS``).
    publish_linger_s: float
    publish_batch: int = PUBLISH_BATCH


class VideoHandler:
    """Handles one ``outbox_events`` message at a time (the consumer loop runs several)."""

    def __init__(
        self,
        config: VideoHandlerConfig,
        *,
        store: PredictionStore,
        objects: ObjectStore,
        publisher: RawPublisher,
        frames: FrameSource,
        telemetry: Telemetry,
        on_extracted: Callable[[str], Awaitable[None]],
        notices: Notices | None = None,
        segments: SegmentPlanner | None = None,
    ) -> None:
        self._notices = notices
        self._segments = segments
        self._config = config
        self._store = store
        self._objects = objects
        self._publisher = publisher
        self._frames = frames
        self._telemetry = telemetry
        self._on_extracted = on_extracted
        self._refusals = EventRefusals(
            store=store,
            notices=notices,
            dead_letters=DeadLetters(publisher, config.dlq_suffix, config.dlq_max_bytes),
            telemetry=telemetry,
            work_dir=config.work_dir,
            max_message_bytes=config.max_message_bytes,
            defaults={
                "sampling": config.sampling.as_dict(),
                "preprocessing": config.preprocessing.as_dict(),
            },
        )
        self._extractions = ExtractionClaims(store, config.extraction_stale_s)

    @property
    def refusals(self) -> EventRefusals:
        """How an event is failed (dead letter, document, notice): segments fail it alike."""
        return self._refusals

    async def handle(self, message: Message) -> None:
        self._telemetry.count("events_received")
        try:
            event = parse_video_event(
                message.value,
                self._config.videos_bucket,
                max_bytes=self._config.max_message_bytes,
                allowed_buckets=self._config.allowed_buckets,
            )
        except OptionsRejected as exc:
            await self._refuse_options(message, exc)
            return
        except PermanentError as exc:
            await self._refusals.fail(message, getattr(exc, "event_id", None), exc)
            return
        refusal = callback_refusal(event.options, self._config.webhook_hosts)
        if refusal is not None:
            # Refused like any other option, and the URL is never called (not even to fail).
            await self._refuse_options(
                message, OptionsRejected(refusal, replace(event, options=EventOptions()))
            )
            return
        known = await self._store.get(event.event_id)
        if known is not None and known.video_path_over:
            self._telemetry.count("events_duplicate")
            log.info(
                "duplicate event ignored",
                extra={"event_id": event.event_id, "status": known.status.value},
            )
            return
        fields = self._initial_fields(event, self.plan_of(event))
        # Counters of results are kept per results partition: the event remembers how many.
        fields["results_partitions"] = await self._publisher.partitions(self._config.results_topic)
        if not await self._store.begin(event.event_id, fields):
            self._telemetry.count("events_duplicate")
            log.info("duplicate event ignored", extra={"event_id": event.event_id})
            return
        try:
            if not await self._extractions.run_once(
                event.event_id, lambda: self._process(event, message.value or b"")
            ):
                self._telemetry.count("events_duplicate")
                log.info(
                    "duplicate event: another copy extracted it", extra={"event_id": event.event_id}
                )
        except PermanentError as exc:
            await self._refusals.fail(message, event.event_id, exc)

    async def _refuse_options(self, message: Message, error: OptionsRejected) -> None:
        """Record the event, then fail it: a producer must be able to see why (``status``)."""
        event = error.event
        known = await self._store.get(event.event_id)
        if known is not None and known.video_path_over:
            self._telemetry.count("events_duplicate")
            return
        if await self._store.begin(event.event_id, self._initial_fields(event, None)):
            await self._refusals.fail(message, event.event_id, error)

    async def dead_letter(self, message: Message, error: PermanentError) -> None:
        event_id = getattr(error, "event_id", None) or event_id_hint(
            message.value, max_bytes=self._config.max_message_bytes
        )
        await self._refusals.fail(message, event_id, error)

    def plan_of(self, event: VideoEvent) -> SamplingPlan:
        """The event's own sampling: its options over the runner's ``FRAME_EVERY_N``."""
        return event.options.sampling(self._config.sampling.every_n)

    def _initial_fields(self, event: VideoEvent, plan: SamplingPlan | None) -> dict[str, Any]:
        sampling = self._config.sampling.as_dict() if plan is None else plan.as_dict()
        return {
            "source": {
                "bucket": event.bucket,
                "object": event.object_key,
                "media_type": event.media_type,
            },
            "sampling": sampling,
            "options": event.options.as_document(),
            "preprocessing": self._config.preprocessing.as_dict(),
            "error": None,
        }

    async def _process(self, event: VideoEvent, raw: bytes) -> None:
        if self._segments is not None and await self._segments.publish_segments(
            event, raw, self.plan_of(event)
        ):
            return  # its segments finish it, on whichever runners take them
        config = self._config
        config.work_dir.mkdir(parents=True, exist_ok=True)
        path = config.work_dir / f"{event.event_id}-{uuid.uuid4().hex[:8]}.video"
        log.info("video accepted", extra={"event_id": event.event_id, "stage": "accept"})
        try:
            started = time.monotonic()
            size = await self._objects.download_to_file(
                event.bucket, event.object_key, path, max_bytes=config.limits.max_bytes
            )
            self._stage(event.event_id, "download", started, bytes=size)
            info = await asyncio.to_thread(self._frames.probe, path)
            await self._store.update_processing(
                event.event_id, {"video": info.as_dict(), "source.size_bytes": size}
            )
            total = await self._extract_and_publish(event, path)
        finally:
            path.unlink(missing_ok=True)
        if total == 0:
            raise InvalidVideo("the video has no decodable frame", code=ErrorCode.NO_FRAMES)
        now = datetime.now(UTC)
        updated = await self._store.update_processing(
            event.event_id, {"total_frames": total, "frames_published": total, "extracted_at": now}
        )
        if not updated:
            log.warning(
                "event left processing while extracting", extra={"event_id": event.event_id}
            )
            return
        self._telemetry.count("events_extracted")
        log.info(
            "all frame tasks published",
            extra={"event_id": event.event_id, "stage": "publish", "total_frames": total},
        )
        await self._on_extracted(event.event_id)

    async def _extract_and_publish(self, event: VideoEvent, path: Path) -> int:
        """Decode, upload and publish as one bounded pipeline; returns the number of frames."""
        config = self._config
        plan = self.plan_of(event)
        publication = Publication(
            PublishTo(
                config.frames_bucket,
                config.tasks_topic,
                config.publish_batch,
                config.publish_linger_s,
            ),
            event,
            store=self._store,
            publisher=self._publisher,
            telemetry=self._telemetry,
        )
        await publication.resume()
        started = time.monotonic()
        published = await upload_and_publish(
            FrameUpload(
                config.frames_bucket,
                config.upload_concurrency,
                config.publish_linger_s,
                config.publish_batch,
            ),
            event.event_id,
            self._frames.extract(path, plan),
            publication,
            objects=self._objects,
            telemetry=self._telemetry,
        )
        elapsed = time.monotonic() - started
        self._stage(event.event_id, "extract_upload_publish", started, frames=published)
        if elapsed > 0:
            # Every decoded frame counts, sampled or not: that is the decoder's real speed.
            decoded = published * (plan.every_n or 1)
            self._telemetry.gauge("decode_fps", decoded / elapsed)
        return published

    def _stage(self, event_id: str, stage: str, started: float, **fields: Any) -> None:  # noqa: ANN401
        duration = time.monotonic() - started
        self._telemetry.observe("stage_seconds", duration, stage=stage)
        log.info(
            "stage done",
            extra={
                "event_id": event_id,
                "stage": stage,
                "duration_s": round(duration, 3),
                **fields,
            },
        )
