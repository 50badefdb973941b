"""The outbox-S3 worker: ``predictable`` events get their final JSON in S3, then become ``ready``.

The runner announces each ``predictable`` event on ``predictable_events`` (key = event_id); the
worker consumes the notice, writes ``detection/{event_id}.json`` to the source bucket (the same
bytes whoever writes them) and moves the event to ``ready`` (a claimed transition: one replica
wins, however many wrote). A notice that never came (the runner died between the transition and
the notice) is made up for by a slower sweep over ``predictable`` events. The runner's earlier
``published`` notice lets the worker start the merge while results still come
(services/early_merges.py); at ``predictable`` the final JSON is then mostly written.

After ``ready`` the event's per-frame documents are deleted (``KEEP_FRAME_DOCUMENTS`` keeps them):
the JSON in S3 is the record, and the store holds in-flight work, not history. A failed event's
documents are kept ``FAILED_RETENTION_S`` for diagnosis, then deleted by the same sweep.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from video_runner.contracts.predictable_event import parse_predictable_event
from video_runner.domain.detection_summary import count_pairs
from video_runner.domain.ids import detection_key
from video_runner.domain.prediction import Prediction
from video_runner.domain.status import Status
from video_runner.domain.tracks import wants_tracks
from video_runner.errors import InvalidMessage, PermanentError
from video_runner.ports import Message, ObjectStore, PredictionStore, Telemetry, TrackerFactory
from video_runner.services.early_merges import EarlyMerges
from video_runner.services.merged_output import write_merged
from video_runner.services.notices import Notices, move_and_announce
from video_runner.services.paging import find_all
from video_runner.services.tracking import FrameTracking

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OutboxConfig:
    default_bucket: str
    #: A ``predictable`` event this old without ``ready`` is written by the sweep: its notice
    #: was lost (or is very late; writing twice is harmless).
    notice_grace_s: float
    keep_frame_documents: bool
    failed_retention_s: float
    work_dir: Path
    #: Whether an event that does not say (its ``track`` option) is tracked.
    track_default: bool
    #: Merges started before ``predictable`` at once (``OUTBOX_EARLY_MERGES``; 0: none).
    early_merges: int
    #: How often an early merge re-reads a page whose results are not all in.
    merge_poll_s: float


class OutboxS3:
    def __init__(
        self,
        config: OutboxConfig,
        *,
        store: PredictionStore,
        objects: ObjectStore,
        telemetry: Telemetry,
        notices: Notices | None = None,
        trackers: TrackerFactory | None = None,
    ) -> None:
        """``trackers`` makes each tracked video's tracker; without it nothing is tracked."""
        self._trackers = trackers
        self._config = config
        self._store = store
        self._objects = objects
        self._telemetry = telemetry
        self._notices = notices
        self.early = EarlyMerges(
            store,
            work_dir=config.work_dir,
            limit=config.early_merges,
            poll_s=config.merge_poll_s,
            tracking_of=self._tracking_of,
        )

    # -- the notice consumer ------------------------------------------------------------------

    async def handle(self, message: Message) -> None:
        try:
            notice = parse_predictable_event(message.value)
        except InvalidMessage as exc:
            # Our own runner writes these; a malformed one is a bug to see, not work to redo.
            log.error(  # noqa: TRY400 - the fields say why; a parse's traceback says nothing
                "malformed predictable notice ignored",
                extra={"offset": message.offset, "error_code": str(exc.code), "error": str(exc)},
            )
            return
        if notice.status == "published":
            await self.early.start(notice.event_id)
        else:
            await self.finish(notice.event_id)

    async def dead_letter(self, message: Message, error: PermanentError) -> None:
        log.error(
            "predictable notice failed for good",
            extra={"offset": message.offset, "error_code": str(error.code), "error": str(error)},
        )

    async def finish(self, event_id: str) -> bool:
        """Write the final JSON of a ``predictable`` event and make it ``ready``."""
        prediction = await self._store.get(event_id)
        if prediction is None or prediction.status is not Status.PREDICTABLE:
            return False  # ready already (a duplicate notice), or not ours to write
        try:
            return await self._write_and_move(prediction)
        except PermanentError as exc:
            # Refused for good (a document the store will not take, an object S3 will not):
            # retrying every sweep would wedge the event, so it ends failed, with its notice.
            await self._fail(event_id, exc)
            return False

    async def _fail(self, event_id: str, error: PermanentError) -> None:
        moved = await move_and_announce(
            self._store,
            self._notices,
            event_id,
            Status.FAILED,
            {
                "error": {"code": str(error.code), "message": str(error)[:1000]},
                "failed_at": datetime.now(UTC),
            },
            source=Status.PREDICTABLE,
        )
        if moved:
            self._telemetry.count("events_failed", error_code=str(error.code))
            log.error(
                "event failed writing its result",
                extra={"event_id": event_id, "error_code": str(error.code), "reason": str(error)},
            )

    async def _write_and_move(self, prediction: Prediction) -> bool:
        event_id = prediction.event_id
        bucket = prediction.output_bucket(self._config.default_bucket)
        key = detection_key(event_id)
        started = time.monotonic()
        with tempfile.TemporaryDirectory(dir=self._config.work_dir) as folder:
            path = Path(folder) / f"{event_id}.json"
            classes: Counter[str] = Counter()
            try:
                early = await self.early.take(event_id)
                if early is None:
                    written = await write_merged(
                        self._store, prediction, path, classes, self._tracking_of(prediction)
                    )
                else:
                    # Copies two files of up to tens of MB: off the event loop.
                    written = await asyncio.to_thread(early.assemble, prediction, path)
                    classes.update(early.classes)
            finally:
                self.early.release(event_id)
            await self._objects.upload_file(bucket, key, path, "application/json")
        tracked = {"tracks": written.tracks} if written.tracks else {}
        moved = await move_and_announce(
            self._store,
            self._notices,
            event_id,
            Status.READY,
            {
                **tracked,
                "ready_at": datetime.now(UTC),
                "output_s3": f"s3://{bucket}/{key}",
                # Objects per class, most frequent first, as pairs: class names are never keys.
                "detections": count_pairs(
                    dict(sorted(classes.items(), key=lambda kv: (-kv[1], kv[0])))
                ),
                "models": written.models,
            },
        )
        duration = time.monotonic() - started
        self._telemetry.observe("stage_seconds", duration, stage="write_result")
        if not moved:
            return False
        self._telemetry.count("events_ready")
        log.info(
            "event ready",
            extra={
                "event_id": event_id,
                "stage": "write_result",
                "output": f"s3://{bucket}/{key}",
                "frames": written.frames,
                "models": written.models,
                "tracks": written.tracks,
                "duration_s": round(duration, 3),
            },
        )
        if not self._config.keep_frame_documents:
            await self.purge(prediction)
        return True

    def _tracking_of(self, prediction: Prediction) -> FrameTracking | None:
        if self._trackers is None or not wants_tracks(
            prediction.options, self._config.track_default
        ):
            return None
        return FrameTracking(self._trackers)

    async def close(self) -> None:
        """Stop the early merges (their files go with them)."""
        await self.early.close()

    # -- the sweep ----------------------------------------------------------------------------

    async def sweep(self, now: datetime | None = None) -> int:
        """Write late ``predictable`` events; finish pending completion notices (their
        publishers died); purge what retention no longer keeps."""
        now = now or datetime.now(UTC)
        done = 0
        await self.early.sweep()
        if self._notices is not None:
            await self._notices.sweep(now)
        late = now - timedelta(seconds=self._config.notice_grace_s)
        for late_one in await find_all(self._store, Status.PREDICTABLE, before=late):
            if await self.finish(late_one.event_id):
                done += 1
        if not self._config.keep_frame_documents:
            # Ready events are purged right after ready; these are the ones a crash interrupted.
            for ready in await find_all(self._store, Status.READY, before=late, unpurged=True):
                await self.purge(ready)
        expired = now - timedelta(seconds=self._config.failed_retention_s)
        for failed in await find_all(self._store, Status.FAILED, before=expired, unpurged=True):
            await self.purge(failed)
        return done

    async def purge(self, prediction: Prediction) -> None:
        """Delete an event's per-frame documents, found by ``_id`` from its task pages."""
        event_id = prediction.event_id
        # A video that failed before its total was known has pages up to what it published.
        pages = prediction.task_pages
        frame_ids: list[int] = []
        for index in range(pages):
            page = await self._store.read_task_page(event_id, index)
            if page is not None:
                frame_ids.extend(page.frame_ids())
        deleted = await self._store.purge(
            event_id,
            frame_ids,
            pages,
            prediction.results_partitions,
            segments=prediction.segment_count,
        )
        await self._store.annotate(event_id, {"purged_at": datetime.now(UTC)})
        self._telemetry.count("documents_purged", deleted)
        log.info("frame documents purged", extra={"event_id": event_id, "deleted": deleted})
