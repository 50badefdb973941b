"""One long video over many runners: its planner cuts it into segments, every runner takes some.

The runner that takes a video's event reads only its index through ranged reads (the frame
source's ``plan_segments``); a video it can cut goes out as one ``video_segments`` message per
segment, and the event's document records the plan (``segments``). Any runner's
``runner-segments-group`` consumer then decodes one segment through ranged reads, uploads and
publishes its frames exactly as the whole video path does, and records it done
(the claim ``segment-<index>``). Whoever records the last one sets
``total_frames`` and hands the event to the results path. Everything is idempotent: a segment
redelivered or redone after a crash resumes from its task pages and changes nothing
(docs/decisions/0016-segments-across-runners.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from video_runner.contracts import VideoEvent, parse_video_event
from video_runner.contracts.video_segment import SegmentTask, parse_segment_task
from video_runner.domain.sampling import SamplingPlan
from video_runner.domain.segments import Planned, Segment
from video_runner.domain.task_pages import TaskPage, TaskRecord
from video_runner.errors import InvalidVideo, PermanentError, RetriableError
from video_runner.ports import (
    Message,
    ObjectRanges,
    ObjectStore,
    PredictionStore,
    RawPublisher,
    SegmentSource,
    Telemetry,
)
from video_runner.services.event_refusals import EventRefusals
from video_runner.services.frame_upload import FrameUpload, upload_and_publish
from video_runner.services.task_publication import Publication, PublishTo

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SegmentsConfig:
    """Where segments go and how long they are (``SEGMENT_SECONDS``; 0: never cut)."""

    topic: str
    seconds: float
    tasks_topic: str
    max_video_bytes: int | None
    upload: FrameUpload
    #: The runners' ``FRAME_EVERY_N``, for an event whose options set no sampling.
    default_every_n: int


class RangedVideo:
    """A video object read by byte range from a worker thread: the frame source's ``fetch``.

    A read that fails is remembered, so that a decoder that took it for the end of the file
    (FFmpeg may) is never blamed on the video: the read's own error is raised instead.
    """

    def __init__(self, objects: ObjectRanges, event: VideoEvent, size: int) -> None:
        self._objects = objects
        self._event = event
        self.size = size
        self.fetched = 0
        self.failure: Exception | None = None
        self._loop = asyncio.get_running_loop()

    @property
    def name(self) -> str:
        return self._event.object_key.rsplit("/", 1)[-1]

    def fetch(self, start: int, end: int) -> bytes:
        read = self._objects.read_range(self._event.bucket, self._event.object_key, start, end)
        try:
            data = asyncio.run_coroutine_threadsafe(read, self._loop).result()
        except Exception as exc:
            self.failure = exc
            raise
        self.fetched += len(data)
        return data

    def blamed(self, error: InvalidVideo) -> Exception:
        """What to raise for ``error`` seen while reading: the failed read's error, if any."""
        return self.failure if self.failure is not None else error


class SegmentPlanner:
    """The planning half: cut an event's video, or say it is decoded whole."""

    def __init__(
        self,
        config: SegmentsConfig,
        *,
        store: PredictionStore,
        ranges: ObjectRanges,
        publisher: RawPublisher,
        source: SegmentSource,
        telemetry: Telemetry,
    ) -> None:
        self._config = config
        self._store = store
        self._ranges = ranges
        self._publisher = publisher
        self._source = source
        self._telemetry = telemetry

    async def publish_segments(self, event: VideoEvent, raw: bytes, plan: SamplingPlan) -> bool:
        """Cut the event's video and publish its segments: True, or False with the reason
        logged (then the caller decodes it whole). An invalid video is left to that path too:
        it refuses it with the same checks and the same words."""
        config = self._config
        if config.seconds <= 0:
            return False
        started = time.monotonic()
        size = await self._ranges.size_of(
            event.bucket, event.object_key, max_bytes=config.max_video_bytes
        )
        video = RangedVideo(self._ranges, event, size)
        try:
            planned: Planned = await asyncio.to_thread(
                self._source.plan_segments, video.fetch, size, video.name, plan, config.seconds
            )
        except InvalidVideo as error:
            failure = video.blamed(error)
            if failure is not error:
                raise failure from error
            log.info(
                "video decoded whole: planning refused it",
                extra={"event_id": event.event_id, "reason": str(error)},
            )
            return False
        if planned.plan is None or planned.info is None:
            log.info(
                "video decoded whole",
                extra={"event_id": event.event_id, "reason": planned.reason},
            )
            return False
        segments = planned.plan.segments
        document = json.loads(raw)
        messages = [
            (
                f"{event.event_id}:{segment.index}",
                SegmentTask.of(event.event_id, size, document, segment).as_message(),
            )
            for segment in segments
        ]
        await self._publisher.publish_many(config.topic, messages, spread=True)
        # Recorded once every segment is out: a crash before this plans the video again.
        await self._store.update_processing(
            event.event_id,
            {
                "video": planned.info.as_dict(),
                "source.size_bytes": size,
                "segments": {"count": len(segments), "frames": planned.plan.sampled},
            },
        )
        self._telemetry.count("segments_published", len(segments))
        log.info(
            "video cut into segments",
            extra={
                "event_id": event.event_id,
                "stage": "plan",
                "segments": len(segments),
                "total_frames": planned.plan.sampled,
                "bytes_read": video.fetched,
                "duration_s": round(time.monotonic() - started, 3),
            },
        )
        return True


class SegmentHandler:
    """Handles one ``video_segments`` message: decode, upload and publish one segment."""

    def __init__(
        self,
        config: SegmentsConfig,
        *,
        default_bucket: str,
        allowed_buckets: frozenset[str] | None,
        max_message_bytes: int,
        store: PredictionStore,
        objects: ObjectStore,
        ranges: ObjectRanges,
        publisher: RawPublisher,
        source: SegmentSource,
        telemetry: Telemetry,
        refusals: EventRefusals,
        on_extracted: Callable[[str], Awaitable[None]],
    ) -> None:
        self._config = config
        self._default_bucket = default_bucket
        self._allowed_buckets = allowed_buckets
        self._max_message_bytes = max_message_bytes
        self._store = store
        self._objects = objects
        self._ranges = ranges
        self._publisher = publisher
        self._source = source
        self._telemetry = telemetry
        self._refusals = refusals
        self._on_extracted = on_extracted

    async def handle(self, message: Message) -> None:
        try:
            task = parse_segment_task(message.value, max_bytes=self._max_message_bytes)
            event = parse_video_event(
                json.dumps(task.event).encode(),
                self._default_bucket,
                max_bytes=self._max_message_bytes,
                allowed_buckets=self._allowed_buckets,
            )
        except PermanentError as exc:
            await self._refusals.fail(message, getattr(exc, "event_id", None), exc)
            return
        segment = task.segment.segment()
        prediction = await self._store.get(event.event_id)
        if prediction is None or not prediction.accepts_results or prediction.extraction_done:
            self._telemetry.count("segments_duplicate")
            log.info(
                "segment ignored: its event is over",
                extra={"event_id": event.event_id, "segment": segment.index},
            )
            return
        if await self._store.claims_held(event.event_id, [segment_claim(segment.index)]):
            # Done by an earlier delivery, which may have stopped before finishing the event.
            self._telemetry.count("segments_duplicate")
            await self._done(event.event_id, segment)
            return
        try:
            await self._publish(event, segment, task.size_bytes)
        except PermanentError as exc:
            await self._refusals.fail(message, event.event_id, exc)
            return
        await self._done(event.event_id, segment)

    async def dead_letter(self, message: Message, error: PermanentError) -> None:
        await self._refusals.fail(message, getattr(error, "event_id", None), error)

    async def _publish(self, event: VideoEvent, segment: Segment, size: int) -> None:
        config = self._config
        plan = event.options.sampling(config.default_every_n)
        publication = Publication(
            PublishTo(
                config.upload.frames_bucket,
                config.tasks_topic,
                config.upload.publish_batch,
                config.upload.publish_linger_s,
                progress_field=None,
            ),
            event,
            store=self._store,
            publisher=self._publisher,
            telemetry=self._telemetry,
            segment=segment,
        )
        await publication.resume()
        video = RangedVideo(self._ranges, event, size)
        started = time.monotonic()
        log.info(
            "segment started",
            extra={"event_id": event.event_id, "stage": "segment", "segment": segment.index},
        )
        frames = self._source.extract_segment(video.fetch, size, video.name, segment, plan)
        try:
            published = await upload_and_publish(
                config.upload,
                event.event_id,
                frames,
                publication,
                objects=self._objects,
                telemetry=self._telemetry,
            )
        except InvalidVideo as error:
            failure = video.blamed(error)
            if failure is not error:
                raise failure from error
            raise
        log.info(
            "segment published",
            extra={
                "event_id": event.event_id,
                "stage": "segment",
                "segment": segment.index,
                "frames": published,
                "bytes_read": video.fetched,
                "duration_s": round(time.monotonic() - started, 3),
            },
        )

    async def _done(self, event_id: str, segment: Segment) -> None:
        """Record the segment done (a claim: one insert, never a write to the event's
        document, which other runners write at the same time); whoever sees every segment
        done sets ``total_frames`` (two runners finishing the last two at once both set the
        same total, the plan's)."""
        await self._store.claim(event_id, segment_claim(segment.index))
        self._telemetry.count("segments_done")
        names = [segment_claim(index) for index in range(segment.count)]
        if len(await self._store.claims_held(event_id, names)) < segment.count:
            return
        prediction = await self._store.get(event_id)
        if prediction is None or prediction.extraction_done:
            return
        if not prediction.segment_count:
            # The planner records the plan once every segment is out; its write and this one
            # must not meet (FerretDB keeps one of two concurrent writes to a document).
            raise RetriableError(f"the plan of {event_id} is not recorded yet")
        await self._join_shared_pages(event_id, segment.count)
        total = int(prediction.document["segments"]["frames"])
        updated = await self._store.update_processing(
            event_id,
            {"total_frames": total, "frames_published": total, "extracted_at": datetime.now(UTC)},
        )
        if updated:
            self._telemetry.count("events_extracted")
            log.info(
                "all frame tasks published",
                extra={"event_id": event_id, "stage": "publish", "total_frames": total},
            )
            await self._on_extracted(event_id)

    async def _join_shared_pages(self, event_id: str, count: int) -> None:
        """Write the pages segments share, from every segment's own record of its part: after
        this the event's pages are what decoding it whole writes (readers see no segments)."""
        parts: dict[int, dict[int, TaskRecord]] = {}
        buckets: dict[int, str] = {}
        for index in range(count):
            for page in await self._store.read_segment_pages(event_id, index):
                parts.setdefault(page.index, {}).update((t.frame_id, t) for t in page.tasks)
                buckets[page.index] = page.bucket
        for index, records in sorted(parts.items()):
            tasks = tuple(records[frame] for frame in sorted(records))
            await self._store.record_task_page(event_id, TaskPage(index, buckets[index], tasks))


def segment_claim(index: int) -> str:
    """The claim that says a segment's tasks are all published."""
    return f"segment-{index}"
