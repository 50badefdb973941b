"""The runner's results path: ``inference_results`` in, ``predictable`` out, exactly once.

Each result is stored once per (event_id, frame_id); then the event's distinct results are
counted and, when they reach ``total_frames``, the document moves ``processing`` ->
``predictable`` with a conditional update, which can succeed only once. The merged JSON itself
is rendered from the sorted per-frame records when it is written (see docs/contracts.md).

Lost transitions (a crash between the insert and the check) are finished by the reconciler;
frames whose result never comes are re-published by the reaper, and after the last attempt the
event fails with ``inference_timeout`` and the missing frame ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from video_runner.contracts import InferenceTask, parse_inference_result
from video_runner.domain.results import judge_completion
from video_runner.domain.status import Status
from video_runner.errors import ErrorCode, PermanentError
from video_runner.ports import Message, PredictionStore, RawPublisher
from video_runner.services.dead_letters import dead_letter
from video_runner.services.telemetry import Telemetry

log = logging.getLogger(__name__)

_MISSING_IDS_SHOWN = 200


@dataclass(frozen=True, slots=True)
class ResultsConfig:
    tasks_topic: str
    dlq_suffix: str
    max_failed_ratio: float = 0.0
    result_deadline_s: float = 120.0
    reaper_max_attempts: int = 3


class Completion:
    """Counts an event's distinct results and makes the one transition when they are all in.

    Checks of one event are coalesced: while one runs, further requests only mark it dirty,
    so a burst of results costs two counts, not one per result.
    """

    def __init__(self, config: ResultsConfig, store: PredictionStore, telemetry: Telemetry) -> None:
        self._config = config
        self._store = store
        self._telemetry = telemetry
        self._running: dict[str, asyncio.Task[None]] = {}
        self._dirty: set[str] = set()

    async def check(self, event_id: str) -> None:
        """Count and, if complete, finish the event (idempotent; safe to call any time)."""
        document = await self._store.get(event_id)
        if document is None or document.get("status") != Status.PROCESSING.value:
            return
        total = document.get("total_frames")
        if total is None:
            # The video path owns the document until it sets total_frames, and then checks
            # again itself. Writing progress meanwhile would race its writes, and a server whose
            # updates are read-modify-write (FerretDB) can then lose total_frames: seen in the
            # chaos test. Results stored meanwhile are counted at that check.
            return
        received, failed = await self._store.count_results(event_id)
        verdict = judge_completion(total, received, failed, self._config.max_failed_ratio)
        if not verdict.complete:
            if received > int(document.get("results_received") or 0):
                await self._store.update_processing(event_id, {"results_received": received})
            return
        now = datetime.now(UTC)
        summary = {"results_received": received, "failed_frames": failed}
        if verdict.too_many_failures:
            moved = await self._store.transition(
                event_id,
                Status.FAILED,
                {
                    **summary,
                    "failed_at": now,
                    "error": {
                        "code": str(ErrorCode.INFERENCE_FAILED),
                        "message": f"the detector failed on {failed} of {total} frames, above "
                        f"the allowed ratio {self._config.max_failed_ratio}",
                    },
                },
            )
            if moved:
                self._telemetry.count("events_failed", error_code=str(ErrorCode.INFERENCE_FAILED))
            return
        moved = await self._store.transition(
            event_id, Status.PREDICTABLE, {**summary, "predictable_at": now}
        )
        if moved:
            self._telemetry.count("events_predictable")
            log.info(
                "event predictable",
                extra={
                    "event_id": event_id,
                    "stage": "merge",
                    "frames": received,
                    "failed": failed,
                },
            )

    def request(self, event_id: str) -> None:
        """Schedule a check in the background, coalescing with one already running."""
        if event_id in self._running:
            self._dirty.add(event_id)
            return
        self._running[event_id] = asyncio.create_task(self._checks(event_id))

    async def _checks(self, event_id: str) -> None:
        try:
            while True:
                self._dirty.discard(event_id)
                try:
                    await self.check(event_id)
                except Exception:  # the reconciler will retry; a check must not kill the loop
                    log.exception("completion check failed", extra={"event_id": event_id})
                    return
                if event_id not in self._dirty:
                    return
        finally:
            self._running.pop(event_id, None)

    async def idle(self) -> None:
        """Wait for the background checks (tests and shutdown)."""
        while self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)


class KeyedLocks:
    """One lock per key, alive only while someone holds or awaits it."""

    def __init__(self) -> None:
        self._locks: dict[object, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: object) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class ResultsPath:
    """Handles one ``inference_results`` message.

    Duplicates of one frame are stored one at a time within a replica: the store's conditional
    upsert makes the first one win on MongoDB, and the lock keeps that true on servers whose
    conditional updates are not atomic under concurrency (FerretDB on SQLite, in tests).
    """

    def __init__(
        self,
        config: ResultsConfig,
        *,
        store: PredictionStore,
        publisher: RawPublisher,
        completion: Completion,
        telemetry: Telemetry,
    ) -> None:
        self._config = config
        self._store = store
        self._publisher = publisher
        self._completion = completion
        self._telemetry = telemetry
        self._frame_locks = KeyedLocks()

    async def handle(self, message: Message) -> None:
        try:
            parsed = parse_inference_result(message.value)
        except PermanentError as exc:
            await self.dead_letter(message, exc)
            return
        self._telemetry.count("results_received")
        async with self._frame_locks.hold((parsed.event_id, parsed.result.frame_id)):
            stored = await self._store.save_result(parsed.event_id, parsed.result)
        if not stored:
            self._telemetry.count("results_duplicate")
            return
        if parsed.result.error is not None:
            self._telemetry.count("results_failed")
        known = await self._store.get(parsed.event_id)
        if known is None:
            # Kept in the frames collection for inspection; nothing else to do with it.
            self._telemetry.count("results_unknown_event")
            log.warning(
                "result for an unknown event",
                extra={"event_id": parsed.event_id, "frame_id": parsed.result.frame_id},
            )
            return
        self._completion.request(parsed.event_id)

    async def dead_letter(self, message: Message, error: PermanentError) -> None:
        await dead_letter(self._publisher, message, error, self._config.dlq_suffix)
        self._telemetry.count("results_rejected", error_code=str(error.code))


class Reconciler:
    """Finishes events whose results are all stored but whose transition was lost."""

    def __init__(self, store: PredictionStore, completion: Completion) -> None:
        self._store = store
        self._completion = completion

    async def run_once(self) -> int:
        checked = 0
        for document in await self._store.find(Status.PROCESSING, limit=500):
            if document.get("total_frames") is None:
                continue
            await self._completion.check(document["_id"])
            checked += 1
        return checked


class Reaper:
    """Re-publishes the tasks of frames whose result is overdue; fails the event at the end.

    Replicas do not reap the same event twice: each attempt is claimed by a conditional update
    on the attempt count before anything is re-published. "Overdue" is measured from the event's
    last progress (``updated_at``, which the completion check moves whenever a new result was
    counted); after the first re-publication the deadline doubles with each further one (1x, 1x,
    2x, 4x...).
    """

    def __init__(
        self,
        config: ResultsConfig,
        *,
        store: PredictionStore,
        publisher: RawPublisher,
        completion: Completion,
        telemetry: Telemetry,
    ) -> None:
        self._config = config
        self._store = store
        self._publisher = publisher
        self._completion = completion
        self._telemetry = telemetry

    async def run_once(self, now: datetime | None = None) -> int:
        now = now or datetime.now(UTC)
        stale = now - timedelta(seconds=self._config.result_deadline_s)
        acted = 0
        for document in await self._store.find(Status.PROCESSING, older_than=stale, limit=100):
            if document.get("total_frames") is None:
                continue  # the video path still owns it (or will redo it on redelivery)
            attempts = int(document.get("reaper_attempts") or 0)
            deadline = self._config.result_deadline_s * (2 ** max(attempts - 1, 0))
            if document["updated_at"].astimezone(UTC) > now - timedelta(seconds=deadline):
                continue
            await self._reap(document, attempts, now)
            acted += 1
        return acted

    async def _reap(self, document: dict[str, Any], attempts: int, now: datetime) -> None:
        event_id = str(document["_id"])
        await self._completion.check(event_id)
        pending = await self._store.pending_frames(event_id)
        current = await self._store.get(event_id)
        if current is None or current.get("status") != Status.PROCESSING.value:
            return
        # Frame records without a result. A frame with no record cannot be missing: its task is
        # published only after its record is written.
        missing = sorted(int(frame["frame_id"]) for frame in pending)
        if not missing:
            return
        if attempts >= self._config.reaper_max_attempts:
            shown = missing[:_MISSING_IDS_SHOWN]
            moved = await self._store.transition(
                event_id,
                Status.FAILED,
                {
                    "failed_at": now,
                    "error": {
                        "code": str(ErrorCode.INFERENCE_TIMEOUT),
                        "message": f"{len(missing)} frame(s) got no result after "
                        f"{attempts} re-publication(s)",
                        "missing_frame_ids": shown,
                        "missing_count": len(missing),
                    },
                },
            )
            if moved:
                self._telemetry.count("events_failed", error_code=str(ErrorCode.INFERENCE_TIMEOUT))
                log.error(
                    "event failed: inference timeout",
                    extra={"event_id": event_id, "missing": len(missing)},
                )
            return
        if not await self._store.claim_reaping(event_id, attempts, now):
            return  # another replica reaped this event in the meantime
        tasks = [
            (
                event_id,
                InferenceTask(
                    event_id=event_id,
                    frame_id=int(frame["frame_id"]),
                    bucket=str(frame["bucket"]),
                    object_key=str(frame["object"]),
                    timestamp_ms=frame.get("timestamp_ms"),
                    width=frame.get("width"),
                    height=frame.get("height"),
                    attempt=attempts + 1,
                ).as_message(),
            )
            for frame in pending
            if "object" in frame
        ]
        await self._publisher.publish_many(self._config.tasks_topic, tasks)
        self._telemetry.count("tasks_republished", len(tasks))
        log.warning(
            "re-published overdue frame tasks",
            extra={"event_id": event_id, "frames": len(tasks), "attempt": attempts + 1},
        )
