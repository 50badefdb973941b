"""The runner's results path: ``inference_results`` in, ``predictable`` out, exactly once.

Results come in batches (up to ``RESULTS_BATCH_SIZE`` messages or ``RESULTS_BATCH_WAIT_MS``).
Each batch is stored with one unordered bulk insert keyed by (event_id, frame_id): the first
result of a frame wins and a duplicate is expected, not an error. Only first-time stores move
the event's counter for the batch's results partition (an ``$inc`` by ``_id``), and completion
compares the counters' sum with ``total_frames``: no per-result query grows with the store.
Offsets are committed by the consumer loop once the whole batch is durable.

A crash between the insert and the ``$inc`` leaves a counter short; the reconciler recounts an
event from its stored results when it has been quiet for a while, and that is the only place
that counts (docs/decisions/0006); it and the reaper live in ``services/repair.py``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from video_runner.contracts import (
    PredictableEvent,
    ResultLimits,
    ResultMessage,
    parse_inference_result,
)
from video_runner.domain.prediction import Prediction
from video_runner.domain.results import ResultCounts
from video_runner.domain.status import Status
from video_runner.errors import DependencyUnavailable, ErrorCode, PermanentError
from video_runner.ports import Message, PredictionStore, RawPublisher, Telemetry
from video_runner.services.dead_letters import DeadLetters
from video_runner.services.notices import Notices, move_and_announce

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ResultsConfig:
    tasks_topic: str
    dlq_suffix: str
    #: Where the runner announces a ``predictable`` event to the outbox-S3 workers.
    notices_topic: str
    inference_group: str
    #: The results topic and the runner's group on it: the reaper waits while results that were
    #: on the topic are still unconsumed (a missing result may be among them).
    results_topic: str
    results_group: str
    max_failed_ratio: float
    #: How long a consumed task may stay without a result before it is re-published (doubling).
    result_deadline_s: float
    reaper_max_attempts: int
    #: An event quiet this long has its results recounted once (its counters may be short).
    recount_after_s: float
    max_message_bytes: int
    dlq_max_bytes: int
    limits: ResultLimits


class Completion:
    """Decides, from an event's counters, whether it is complete, and makes the one transition."""

    def __init__(
        self,
        config: ResultsConfig,
        store: PredictionStore,
        publisher: RawPublisher,
        telemetry: Telemetry,
        notices: Notices | None = None,
    ) -> None:
        self._config = config
        self._store = store
        self._publisher = publisher
        self._telemetry = telemetry
        self._notices = notices

    async def extracted(self, event_id: str) -> None:
        """Every task of ``event_id`` is published: tell the outbox-S3 workers a merge may
        start (``published``, services/early_merges.py), then check the event, whose results
        may all be in already."""
        try:
            await self._publisher.publish(
                self._config.notices_topic,
                event_id,
                PredictableEvent(event_id=event_id, status="published").as_message(),
            )
        except DependencyUnavailable as exc:
            # A head start lost, nothing else: the predictable notice still gets a whole merge.
            log.warning(
                "published notice not sent",
                extra={"event_id": event_id, "stage": "merge", "error": str(exc)},
            )
        await self.check(event_id)

    async def check(self, event_id: str) -> None:
        """Read the counters and finish the event if they are complete (idempotent)."""
        prediction = await self._store.get(event_id)
        if prediction is None or not prediction.waits_for_results:
            # Before total_frames the video path owns the event, and it checks again itself
            # once it sets the total.
            return
        counts = await self._store.progress(event_id, prediction.results_partitions)
        await self.decide(prediction, counts)

    async def decide(self, prediction: Prediction, counts: ResultCounts) -> bool:
        """Finish the event if ``counts`` complete it; True when it is complete."""
        event_id = prediction.event_id
        verdict = prediction.completion(counts, self._config.max_failed_ratio)
        if not verdict.complete:
            return False
        now = datetime.now(UTC)
        summary = {"results_received": counts.stored, "failed_frames": counts.failed}
        if verdict.too_many_failures:
            error = {
                "code": str(ErrorCode.INFERENCE_FAILED),
                "message": f"the detector failed on {counts.failed} of "
                f"{prediction.total_frames} frames, above "
                f"the allowed ratio {self._config.max_failed_ratio}",
            }
            fields = {**summary, "failed_at": now, "error": error}
            if await move_and_announce(self._store, self._notices, event_id, Status.FAILED, fields):
                self._telemetry.count("events_failed", error_code=str(ErrorCode.INFERENCE_FAILED))
            return True
        if await self._store.transition(
            event_id, Status.PREDICTABLE, {**summary, "predictable_at": now}
        ):
            self._telemetry.count("events_predictable")
            log.info(
                "event predictable",
                extra={"event_id": event_id, "stage": "merge", "frames": counts.stored},
            )
            # The outbox-S3 workers poll as a fallback: a notice lost here costs time, not data.
            await self._publisher.publish(
                self._config.notices_topic,
                event_id,
                PredictableEvent(event_id=event_id).as_message(),
            )
        return True


@dataclass(slots=True)
class _Accepted:
    event_id: str
    partition: int
    message: ResultMessage


class ResultsHandler:
    """Handles ``inference_results`` messages, a batch at a time (``handle`` for a single one)."""

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
        self._dead_letters = DeadLetters(publisher, config.dlq_suffix, config.dlq_max_bytes)

    async def handle(self, message: Message) -> None:
        await self.handle_batch([message])

    async def handle_batch(self, messages: Sequence[Message]) -> None:
        # Parsing and validating up to a batch of large results is CPU work: off the event loop.
        parsed = await asyncio.to_thread(self._parse_all, messages)
        accepted: list[tuple[Message, ResultMessage]] = []
        for message, outcome in parsed:
            if isinstance(outcome, PermanentError):
                await self.dead_letter(message, outcome)
            else:
                accepted.append((message, outcome))
        self._telemetry.count("results_received", len(messages))
        if not accepted:
            return
        events = await self._events_of({m.event_id for _, m in accepted})
        wanted = [
            _Accepted(m.event_id, message.partition, m)
            for message, m in accepted
            if self._wanted(events.get(m.event_id), m)
        ]
        first = await self._store.save_results([(a.event_id, a.message.result) for a in wanted])
        stored = [a for a, new in zip(wanted, first, strict=True) if new]
        self._telemetry.count("results_duplicate", len(wanted) - len(stored))
        await self._count(stored)
        for event_id in dict.fromkeys(a.event_id for a in stored):
            prediction = events[event_id]
            if prediction is not None and prediction.waits_for_results:
                counts = await self._store.progress(event_id, prediction.results_partitions)
                await self._completion.decide(prediction, counts)

    def _parse_all(
        self, messages: Sequence[Message]
    ) -> list[tuple[Message, ResultMessage | PermanentError]]:
        parsed: list[tuple[Message, ResultMessage | PermanentError]] = []
        for message in messages:
            try:
                result: ResultMessage | PermanentError = parse_inference_result(
                    message.value,
                    max_bytes=self._config.max_message_bytes,
                    limits=self._config.limits,
                )
            except PermanentError as exc:
                result = exc
            parsed.append((message, result))
        return parsed

    async def _events_of(self, event_ids: set[str]) -> dict[str, Prediction | None]:
        ids = sorted(event_ids)
        found = await asyncio.gather(*(self._store.get(e) for e in ids))
        return dict(zip(ids, found, strict=True))

    def _wanted(self, prediction: Prediction | None, message: ResultMessage) -> bool:
        """Only results an event in ``processing`` is waiting for are stored."""
        frame_id = message.result.frame_id
        if prediction is None:
            # No document, no task: nothing to complete. Not stored, so nothing to expire.
            self._telemetry.count("results_unknown_event")
            log.warning(
                "result for an unknown event",
                extra={"event_id": message.event_id, "frame_id": frame_id},
            )
            return False
        if not prediction.accepts_results:
            self._telemetry.count("results_late")
            return False
        if not prediction.expects_frame(frame_id):
            self._telemetry.count("results_unexpected_frame")
            log.warning(
                "result for a frame the sampling never selected",
                extra={"event_id": message.event_id, "frame_id": frame_id},
            )
            return False
        if message.rejected_objects:
            self._telemetry.count("objects_rejected", message.rejected_objects)
        return True

    async def _count(self, stored: Sequence[_Accepted]) -> None:
        """One ``$inc`` per (event, results partition) for the results stored the first time."""
        totals: Counter[tuple[str, int]] = Counter()
        failures: Counter[tuple[str, int]] = Counter()
        for item in stored:
            totals[item.event_id, item.partition] += 1
            if item.message.result.error is not None:
                failures[item.event_id, item.partition] += 1
                self._telemetry.count("results_failed")
        for (event_id, partition), count in totals.items():
            # No stamp: the store stamps the counter with its own clock.
            counts = ResultCounts(count, failures[event_id, partition])
            await self._store.add_progress(event_id, partition, counts)

    async def dead_letter(self, message: Message, error: PermanentError) -> None:
        await self._dead_letters.send(message, error)
        self._telemetry.count("results_rejected", error_code=str(error.code))
