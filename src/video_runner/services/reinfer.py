"""Re-runs: an event's stored frames through another detector, for a new version of its result.

A ``reinfer`` message on ``outbox_events`` names a ``ready`` event, a detector and the
producer's request id. The runner gives the request a version number (2, 3, ...: a claim per
number holds the request id, so copies of one request get the same number and never a new
one), creates the version as an event of its own (``{event_id}--v{n}``, with the original's
sampling and options), and publishes one task per frame of the original's final JSON, read as
a stream, pointing at the JPEGs already in the frames bucket. Nothing is downloaded or decoded
again. From there the version is an event like any other: results, completion, its own final
JSON beside the original's (which stays as it was) and its own completion notice.

A request that cannot be served (unknown event, not ready, bad message) is dead-lettered with
its code and changes no document; one whose frames are gone ends its version ``failed`` with
``frames_expired``, so the producer is told.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from video_runner.contracts.reinfer_event import ReinferEvent, parse_reinfer_event
from video_runner.domain.ids import frame_key
from video_runner.domain.prediction import Prediction
from video_runner.domain.status import Status
from video_runner.domain.versions import (
    FIRST_RERUN,
    MAX_VERSIONS,
    root_of,
    version_claim,
    version_event_id,
    version_fields,
)
from video_runner.errors import ErrorCode, PermanentError, SourceMissing
from video_runner.ports import (
    Message,
    ObjectStore,
    ObjectStream,
    PredictionStore,
    RawPublisher,
    Telemetry,
    VersionStore,
)
from video_runner.services.dead_letters import DeadLetters
from video_runner.services.notices import Notices, move_and_announce
from video_runner.services.reinfer_publication import ReinferConfig, RerunPublication
from video_runner.services.result_stream import stream_frames

log = logging.getLogger(__name__)


class ReinferPath:
    """Handles the ``reinfer`` messages of ``outbox_events``, one at a time."""

    def __init__(
        self,
        config: ReinferConfig,
        *,
        store: PredictionStore,
        versions: VersionStore,
        objects: ObjectStore,
        results: ObjectStream,
        publisher: RawPublisher,
        telemetry: Telemetry,
        on_extracted: Callable[[str], Awaitable[None]],
        notices: Notices | None = None,
    ) -> None:
        self._config = config
        self._store = store
        self._versions = versions
        self._objects = objects
        self._results = results
        self._publisher = publisher
        self._telemetry = telemetry
        self._on_extracted = on_extracted
        self._notices = notices
        self._dead_letters = DeadLetters(publisher, config.dlq_suffix, config.dlq_max_bytes)

    async def handle(self, message: Message) -> None:
        try:
            request, original, version, known = await self._resolve(message)
        except PermanentError as exc:
            await self.dead_letter(message, exc)
            return
        version_id = version_event_id(original.event_id, version)
        if known is not None and known.video_path_over:
            self._duplicate(version_id)
            return
        partitions = await self._publisher.partitions(self._config.results_topic)
        fields = version_fields(
            original.document,
            version=version,
            detector=request.detector,
            request_id=request.request_id,
            results_partitions=partitions,
        )
        if not await self._store.begin(version_id, fields):
            self._duplicate(version_id)
            return
        # Also restarts the original's frames retention: its frames serve this run now.
        await self._store.annotate(
            original.event_id,
            {
                f"versions.v{version}": {
                    "event_id": version_id,
                    "detector": request.detector,
                    "request_id": request.request_id,
                    "requested_at": datetime.now(UTC),
                }
            },
        )
        self._telemetry.count("reinfer_requests", outcome="started")
        log.info(
            "re-run accepted",
            extra={"event_id": version_id, "version_of": original.event_id, "version": version},
        )
        try:
            total = await self._publish(original, version_id, request.detector)
        except PermanentError as exc:
            await self._fail(version_id, exc)
            return
        await self._store.update_processing(
            version_id,
            {"total_frames": total, "frames_published": total, "extracted_at": datetime.now(UTC)},
        )
        await self._on_extracted(version_id)

    async def dead_letter(self, message: Message, error: PermanentError) -> None:
        # Never the named event's document: a bad request must not fail a finished event.
        await self._dead_letters.send(message, error)
        self._telemetry.count("reinfer_requests", outcome=f"rejected_{error.code}")
        log.error(
            "re-run refused",
            extra={"error_code": str(error.code), "reason": str(error), "offset": message.offset},
        )

    async def _resolve(
        self, message: Message
    ) -> tuple[ReinferEvent, Prediction, int, Prediction | None]:
        """The request, the event it re-runs, its version number and that version's document
        if it exists already; ``PermanentError`` for a request that cannot be served."""
        request = parse_reinfer_event(message.value, max_bytes=self._config.max_message_bytes)
        original = await self._original(request.event_id)
        version = await self._version_for(original.event_id, request)
        version_id = version_event_id(original.event_id, version)
        known = await self._store.get(version_id)
        if known is not None and known.document.get("version_of") != original.event_id:
            raise PermanentError(
                f"{version_id} is an event of its own, not a version of {original.event_id}",
                code=ErrorCode.BAD_ID,
            )
        return request, original, version, known

    async def _original(self, event_id: str) -> Prediction:
        named = await self._store.get(event_id)
        if named is None:
            raise PermanentError(f"unknown event {event_id}", code=ErrorCode.UNKNOWN_EVENT)
        root = root_of(named.document)
        original = named if root == event_id else await self._store.get(root)
        if original is None:
            raise PermanentError(f"unknown event {root}", code=ErrorCode.UNKNOWN_EVENT)
        if original.status is not Status.READY:
            raise PermanentError(
                f"event {root} is {original.status.value}, not ready", code=ErrorCode.NOT_READY
            )
        return original

    async def _version_for(self, event_id: str, request: ReinferEvent) -> int:
        """The request's version number: the first whose claim holds its request id."""
        held = {"request_id": request.request_id, "detector": request.detector}
        for version in range(FIRST_RERUN, MAX_VERSIONS + 1):
            holder = await self._versions.claim_holding(event_id, version_claim(version), held)
            if holder.get("request_id") == request.request_id:
                return version
        raise PermanentError(f"event {event_id} has {MAX_VERSIONS} versions already")

    def _duplicate(self, version_id: str) -> None:
        self._telemetry.count("reinfer_requests", outcome="duplicate")
        log.info("duplicate re-run ignored", extra={"event_id": version_id})

    async def _fail(self, version_id: str, error: PermanentError) -> None:
        fields = {
            "error": {"code": str(error.code), "message": str(error)[:1000]},
            "failed_at": datetime.now(UTC),
        }
        if await move_and_announce(self._store, self._notices, version_id, Status.FAILED, fields):
            self._telemetry.count("events_failed", error_code=str(error.code))
        log.error(
            "re-run failed",
            extra={"event_id": version_id, "error_code": str(error.code), "reason": str(error)},
        )

    async def _publish(self, original: Prediction, version_id: str, detector: str | None) -> int:
        """One task per frame of the original's result; returns how many frames it has."""
        if original.document.get("frames_deleted_at") is not None:
            raise _expired(original.event_id, "deleted by the frames retention")
        recorded: set[int] = set()
        index = 0
        while (page := await self._store.read_task_page(version_id, index)) is not None:
            recorded.update(page.frame_ids())  # an earlier run of this request published them
            index += 1
        publication = RerunPublication(
            self._config,
            self._store,
            self._publisher,
            self._telemetry,
            target=(original, version_id, detector),
        )
        ordinal = 0
        async for frame in stream_frames(self._results, original.document):
            frame_id = int(frame["frame_id"])
            if ordinal == 0:
                await self._probe(original.event_id, frame_id)
            if frame_id not in recorded:
                await publication.add(ordinal, frame_id, frame.get("timestamp_ms"))
            ordinal += 1
        await publication.finish()
        return ordinal

    async def _probe(self, event_id: str, frame_id: int) -> None:
        """One frame read before any task is sent: frames swept away fail the run at once."""
        try:
            await self._objects.get_bytes(self._config.frames_bucket, frame_key(event_id, frame_id))
        except SourceMissing as exc:
            if exc.code is ErrorCode.MISSING_OBJECT:
                raise _expired(event_id, f"frame {frame_id} is not in the frames bucket") from exc
            raise


def _expired(event_id: str, why: str) -> PermanentError:
    return PermanentError(
        f"the frames of {event_id} are gone ({why}): it cannot be run again",
        code=ErrorCode.FRAMES_EXPIRED,
    )
