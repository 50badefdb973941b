"""Repair loops of the results path: the reconciler and the reaper (docs/decisions/0006).

Both run in every runner replica, every ``REAPER_INTERVAL_S``, over the ``processing`` events
whose tasks are all published, read page by page: the only scans of the results path. The
reconciler finishes events whose counters are complete, and recounts a quiet event whose
counters may be short (a crash between storing results and counting them). The reaper
re-publishes the tasks of frames that the inference workers consumed but never answered, and
leaves frames that are still queued alone, however long they wait.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from video_runner.contracts import InferenceTask
from video_runner.domain.prediction import Prediction
from video_runner.domain.reaping import current_round, grace_s, is_consumed, plan_reaping
from video_runner.domain.status import Status
from video_runner.domain.task_pages import TaskPage, TaskRecord
from video_runner.errors import ErrorCode
from video_runner.ports import ConsumedOffsets, PredictionStore, RawPublisher, Telemetry
from video_runner.services.notices import Notices, move_and_announce
from video_runner.services.paging import find_all
from video_runner.services.results_handler import Completion, ResultsConfig

log = logging.getLogger(__name__)

_MISSING_IDS_SHOWN = 200


async def processing_events(store: PredictionStore) -> list[Prediction]:
    """Every ``processing`` event whose tasks are all published."""
    return [p for p in await find_all(store, Status.PROCESSING) if p.extraction_done]


class Reconciler:
    """Finishes events whose counters are complete, or short, but whose transition never came."""

    def __init__(
        self, config: ResultsConfig, store: PredictionStore, completion: Completion
    ) -> None:
        self._config = config
        self._store = store
        self._completion = completion
        #: The activity stamp at an event's last recount: recount again only after new activity.
        self._recounted: dict[str, datetime] = {}

    async def run_once(self, now: datetime | None = None) -> int:
        """Check every waiting event; returns how many it finished."""
        now = now or datetime.now(UTC)
        finished = 0
        seen: set[str] = set()
        for prediction in await processing_events(self._store):
            event_id = prediction.event_id
            seen.add(event_id)
            counts = await self._store.progress(event_id, prediction.results_partitions)
            if await self._completion.decide(prediction, counts):
                finished += 1
                continue
            activity = prediction.last_activity(counts)
            quiet = now - activity >= timedelta(seconds=self._config.recount_after_s)
            if not quiet or self._recounted.get(event_id) == activity:
                continue
            self._recounted[event_id] = activity
            recounted = await self._store.recount(event_id)
            if recounted.stored > counts.stored:
                log.warning(
                    "result counters were short; recounted",
                    extra={
                        "event_id": event_id,
                        "counted": counts.stored,
                        "stored": recounted.stored,
                    },
                )
            if await self._completion.decide(prediction, recounted):
                finished += 1
        for gone in set(self._recounted) - seen:
            del self._recounted[gone]
        return finished


class Reaper:
    """Re-publishes the tasks of frames lost after consumption; fails an event at the end.

    Only an event quiet for the grace period is examined (its counters have not moved and no
    re-publication is pending). Its frames without a result are split into queued (the inference
    group has not reached them: left alone, however long) and lost (consumed without a result:
    re-published, once per round, claimed so that one replica does it). A frame lost again after
    ``reaper_max_attempts`` re-publications fails the event with ``inference_timeout``.
    """

    def __init__(
        self,
        config: ResultsConfig,
        *,
        store: PredictionStore,
        publisher: RawPublisher,
        offsets: ConsumedOffsets,
        telemetry: Telemetry,
        notices: Notices | None = None,
    ) -> None:
        self._config = config
        self._store = store
        self._publisher = publisher
        self._offsets = offsets
        self._telemetry = telemetry
        self._notices = notices
        self._rounds: dict[str, tuple[int, datetime]] = {}
        #: The previous pass's view: (tasks consumed, results topic end offsets) read in order.
        self._previous: tuple[dict[int, int], dict[int, int]] | None = None

    async def run_once(self, now: datetime | None = None) -> int:
        """Examine every waiting event; returns how many it acted on."""
        now = now or datetime.now(UTC)
        acted = 0
        committed: dict[int, int] | None = None
        waiting = await processing_events(self._store)
        for gone in set(self._rounds) - {p.event_id for p in waiting}:
            del self._rounds[gone]
        for prediction in waiting:
            event_id = prediction.event_id
            counts = await self._store.progress(event_id, prediction.results_partitions)
            if prediction.all_stored(counts):
                continue  # complete: the reconciler finishes it
            activity = prediction.last_activity(counts)
            round_, reaped_at = self._rounds.get(event_id, (0, activity))
            since = now - max(activity, reaped_at)
            if since < timedelta(seconds=grace_s(self._config.result_deadline_s, round_)):
                continue
            if committed is None:
                committed = await self._consumed_with_results_stored()
                if committed is None:
                    return acted  # results still on their topic: a missing one may be there
            if await self._reap(prediction, committed, now):
                acted += 1
        return acted

    async def _consumed_with_results_stored(self) -> dict[int, int] | None:
        """The inference group's offsets as of a moment whose results are all stored, or None.

        A task the inference group has consumed had its result published before that commit, so
        it sits below the results topic's end offsets read just after. Once the runner's results
        group has committed past those ends, each such result is stored or was never sent: only
        then is a missing one lost. While a results partition stalls (a rebalance that keeps
        failing while replicas come and go), re-publishing would only add to the stall and count
        attempts against events whose results are waiting: the reaper waits instead.
        """
        config = self._config
        consumed = await self._offsets.committed(config.inference_group, config.tasks_topic)
        ends = await self._offsets.end_offsets(config.results_topic)
        stored = await self._offsets.committed(config.results_group, config.results_topic)
        previous, self._previous = self._previous, (consumed, ends)
        for tasks, results_ends in ((consumed, ends), previous or ({}, {})):
            if results_ends and _caught_up(stored, results_ends):
                return tasks
        if not ends:
            return consumed  # no results partition at all: nothing can be waiting there
        log.info("reaping waits: results on their topic are not all consumed yet")
        return None

    async def _reap(
        self, prediction: Prediction, committed: Mapping[int, int], now: datetime
    ) -> bool:
        event_id = prediction.event_id
        pages = await self._task_pages(event_id, prediction.task_pages)
        # Only a consumed task can be lost: results are looked up for those alone, so an event
        # queued behind a backlog costs its page reads, not a lookup per frame at every pass.
        consumed = [t for page in pages for t in page.tasks if is_consumed(t, committed)]
        results = await self._store.results_of(event_id, [t.frame_id for t in consumed])
        missing = [task for task in consumed if task.frame_id not in results]
        plan = plan_reaping(missing, self._config.reaper_max_attempts)
        round_ = current_round(missing)
        if plan.fails_event:
            await self._fail(event_id, missing, round_, now)
            return True
        if not plan.republish:
            # Nothing consumed is missing: still queued, or counters short (the reconciler's
            # recount finishes those). Look again after another grace period, not every pass.
            previous, _ = self._rounds.get(event_id, (0, now))
            self._rounds[event_id] = (previous, now)
            return False
        if not await self._store.claim(event_id, f"reap-{round_ + 1}"):
            self._rounds[event_id] = (round_ + 1, now)
            return False  # another replica re-publishes this round
        await self._republish(prediction, pages, plan.republish)
        self._rounds[event_id] = (round_ + 1, now)
        return True

    async def _task_pages(self, event_id: str, count: int) -> list[TaskPage]:
        pages = []
        for index in range(count):
            page = await self._store.read_task_page(event_id, index)
            if page is not None:
                pages.append(page)
        return pages

    async def _republish(
        self, prediction: Prediction, pages: Sequence[TaskPage], lost: Sequence[TaskRecord]
    ) -> None:
        event_id = prediction.event_id
        by_frame = {task.frame_id: page for page in pages for task in page.tasks}
        messages = [
            (
                f"{event_id}/{task.frame_id}",
                InferenceTask(
                    event_id=event_id,
                    frame_id=task.frame_id,
                    bucket=by_frame[task.frame_id].bucket,
                    object_key=task.object_key,
                    timestamp_ms=task.timestamp_ms,
                    width=task.width,
                    height=task.height,
                    attempt=task.attempt + 1,
                    classes=prediction.detector_classes,
                    min_confidence=prediction.min_confidence,
                    detector=prediction.detector,
                ).as_message(),
            )
            for task in lost
        ]
        deliveries = await self._publisher.publish_many(self._config.tasks_topic, messages)
        moved = {
            task.frame_id: TaskRecord(
                task.frame_id,
                task.timestamp_ms,
                task.width,
                task.height,
                task.object_key,
                delivery.partition,
                delivery.offset,
                task.attempt + 1,
            )
            for task, delivery in zip(lost, deliveries, strict=True)
        }
        for page in pages:
            if any(task.frame_id in moved for task in page.tasks):
                await self._store.record_task_page(event_id, page.with_republished(moved))
        self._telemetry.count("tasks_republished", len(lost))
        log.warning(
            "re-published frame tasks consumed without a result",
            extra={"event_id": event_id, "frames": len(lost)},
        )

    async def _fail(
        self, event_id: str, missing: Sequence[TaskRecord], attempts: int, now: datetime
    ) -> None:
        ids = sorted(task.frame_id for task in missing)
        error = {
            "code": str(ErrorCode.INFERENCE_TIMEOUT),
            "message": f"{len(ids)} frame(s) got no result after {attempts} re-publication(s)",
            "missing_frame_ids": ids[:_MISSING_IDS_SHOWN],
            "missing_count": len(ids),
        }
        fields = {"failed_at": now, "error": error}
        if await move_and_announce(self._store, self._notices, event_id, Status.FAILED, fields):
            self._telemetry.count("events_failed", error_code=str(ErrorCode.INFERENCE_TIMEOUT))
            log.error(
                "event failed: inference timeout", extra={"event_id": event_id, "missing": len(ids)}
            )


def _caught_up(committed: Mapping[int, int], ends: Mapping[int, int]) -> bool:
    return all(committed.get(partition, 0) >= end for partition, end in ends.items())
