"""The dispatch core of a consumer loop: docs/decisions/0003-consumer-loop.md, as code.

Polling never stops (paused partitions still call ``getmany``); commits cover only the contiguous
finished prefix of each partition; revoked work is cancelled, never committed. Kafka is reached
only through ``DispatchConsumer``, so unit tests drive it with a fake consumer. Each record, or
each batch, runs as a task of ``retrying.RetryingHandler``, which decides its failures by the
retry policy and returns once it is handled or dead-lettered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from video_runner.adapters.kafka.loop_stats import LoopStats
from video_runner.adapters.kafka.protocols import DispatchConsumer, Offsets, Record, RecordHandler
from video_runner.adapters.kafka.retrying import RetryingHandler
from video_runner.domain.offsets import PartitionProgress
from video_runner.domain.retry_policy import RetryPolicy

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DispatchPolicy:
    """How much runs at once, and the retry policy failures are decided by."""

    max_in_flight: int
    #: From the settings (``RETRY_INITIAL_S``, ``RETRY_MAX_S``, ``RETRY_MAX_ATTEMPTS``).
    retry: RetryPolicy
    #: From the settings (``RESULTS_BATCH_WAIT_MS``); only batch mode waits.
    batch_wait_ms: int
    #: 0: one record at a time; above: batches of up to this many records, one at a time.
    batch_size: int = 0
    poll_timeout_ms: int = 250
    #: A commit retries retriable errors forever inside aiokafka: this bounds it.
    commit_timeout_s: float = 30.0


@dataclass(slots=True)
class _Work:
    record: Record
    task: asyncio.Task[None]


class Dispatcher:
    """Polls, runs records as tasks, commits finished prefixes; one per consumed topic."""

    def __init__(self, topic: str, handler: RecordHandler, policy: DispatchPolicy) -> None:
        self.topic = topic
        self._policy = policy
        self.stats = LoopStats()
        self._handler = RetryingHandler(
            handler, policy.retry, self.stats, batches=policy.batch_size > 0
        )
        # One batch at a time in batch mode: its records are committed together once durable.
        self._max_in_flight = 1 if policy.batch_size > 0 else policy.max_in_flight
        self._progress: dict[TopicPartition, PartitionProgress] = {}
        self._work: dict[TopicPartition, list[_Work]] = {}
        #: The last offset this member committed, per partition (for the lag metric).
        self.committed: dict[TopicPartition, int] = {}
        self._uncommitted: Offsets = {}

    async def run(
        self, consumer: DispatchConsumer, stop: asyncio.Event, *, drain_timeout_s: float
    ) -> None:
        """Poll, dispatch and commit until ``stop`` is set; then drain within a bound."""
        try:
            while not stop.is_set():
                await self.poll_once(consumer)
                await self.commit_finished(consumer)
        finally:
            await self.drain(consumer, drain_timeout_s)

    async def poll_once(self, consumer: DispatchConsumer) -> None:
        in_flight = self._in_flight()
        assignment = consumer.assignment()
        # Paused partitions return nothing, but getmany still runs: the poll timer is reset and
        # heartbeats flow, however long the handlers take.
        batch_size = self._policy.batch_size
        # A batch that is not full yet is worth a short wait, not the whole poll timeout.
        timeout_ms = self._policy.batch_wait_ms if batch_size else self._policy.poll_timeout_ms
        if in_flight >= self._max_in_flight:
            consumer.pause(*assignment)
            # Nothing can be taken before some work finishes: wait for that (at most the poll
            # timeout), not for records that paused partitions never return. The batch after a
            # finished one is then fetched at once instead of a poll timeout later.
            running = [w.task for items in self._work.values() for w in items if not w.task.done()]
            await asyncio.wait(
                running,
                timeout=self._policy.poll_timeout_ms / 1000,
                return_when=asyncio.FIRST_COMPLETED,
            )
            timeout_ms = 0
        else:
            consumer.resume(*assignment)
        capacity = batch_size or max(self._max_in_flight - in_flight, 1)
        try:
            batches = await consumer.getmany(timeout_ms=timeout_ms, max_records=capacity)
        except KafkaError as exc:
            log.warning("poll failed, retrying", extra={"topic": self.topic, "error": str(exc)})
            await asyncio.sleep(1.0)
            return
        self.stats.last_poll = time.monotonic()
        if batch_size:
            self._dispatch_batch(batches)
        else:
            for tp, records in batches.items():
                for record in records:
                    task = asyncio.create_task(
                        self._handler.run_record(record),
                        name=f"{self.topic}-{tp.partition}-{record.offset}",
                    )
                    self._track(tp, record, task)
        self.stats.in_flight = self._in_flight()

    def _track(self, tp: TopicPartition, record: Record, task: asyncio.Task[None]) -> None:
        self._progress.setdefault(tp, PartitionProgress()).start(record.offset)
        self._work.setdefault(tp, []).append(_Work(record, task))

    def _dispatch_batch(self, batches: Mapping[TopicPartition, Sequence[Record]]) -> None:
        records = [record for tp_records in batches.values() for record in tp_records]
        if not records:
            return
        task = asyncio.create_task(
            self._handler.run_batch(records), name=f"{self.topic}-batch-{records[0].offset}"
        )
        for tp, tp_records in batches.items():
            for record in tp_records:
                self._track(tp, record, task)

    def _in_flight(self) -> int:
        return sum(1 for items in self._work.values() for w in items if not w.task.done())

    async def commit_finished(self, consumer: DispatchConsumer) -> None:
        # Offsets whose commit failed are tried again with the next ones (newer ones win).
        offsets = {**self._uncommitted, **self._finished_offsets()}
        if not offsets:
            return
        try:
            await asyncio.wait_for(consumer.commit(offsets), timeout=self._policy.commit_timeout_s)
        except CommitFailedError:
            log.warning("commit refused after a rebalance; another member redoes that work")
            self._uncommitted = {}
            return
        except (KafkaError, TimeoutError) as exc:
            log.warning("commit failed; retried with the next commit", extra={"error": str(exc)})
            self._uncommitted = offsets
            return
        self._uncommitted = {}
        self.stats.committed += len(offsets)
        for tp, meta in offsets.items():
            self.committed[tp] = meta.offset

    def _finished_offsets(self) -> Offsets:
        """Collect finished work; the next offset to commit where a partition's prefix advanced."""
        offsets: Offsets = {}
        for tp, items in list(self._work.items()):
            progress = self._progress.get(tp)
            if progress is None:
                continue
            self._work[tp] = [work for work in items if not work.task.done()]
            for work in items:
                # A cancelled task (revocation, shutdown) is never finished: never committed.
                if work.task.done() and not work.task.cancelled():
                    next_offset = progress.finish(work.record.offset)
                    if next_offset is not None:
                        offsets[tp] = OffsetAndMetadata(next_offset, "")
        return offsets

    async def on_revoked(self, consumer: DispatchConsumer, revoked: set[TopicPartition]) -> None:
        await self.commit_finished(consumer)
        cancelled: set[asyncio.Task[None]] = set()
        for tp in revoked:
            for work in self._work.pop(tp, []):
                work.task.cancel()
                cancelled.add(work.task)
            self._progress.pop(tp, None)
            self.committed.pop(tp, None)
            self._uncommitted.pop(tp, None)
        # A batch spans partitions: records of partitions we keep that were in a cancelled batch
        # must be fetched again, or their offsets would never finish and never be committed.
        for tp, items in list(self._work.items()):
            lost = [w.record.offset for w in items if w.task in cancelled]
            if lost:
                open_offsets = [w.record.offset for w in items if not w.task.done()] + lost
                consumer.seek(tp, min(open_offsets))
                for work in items:
                    work.task.cancel()
                self._work.pop(tp)
                self._progress.pop(tp, None)
        self.stats.assigned -= revoked
        log.info("partitions revoked", extra={"topic": self.topic, "count": len(revoked)})

    def on_assigned(self, assigned: set[TopicPartition]) -> None:
        self.stats.assigned |= assigned
        log.info(
            "partitions assigned",
            extra={"topic": self.topic, "partitions": sorted(tp.partition for tp in assigned)},
        )

    async def drain(self, consumer: DispatchConsumer, timeout_s: float) -> None:
        tasks = [w.task for items in self._work.values() for w in items if not w.task.done()]
        if tasks:
            log.info("draining in-flight work", extra={"count": len(tasks), "timeout_s": timeout_s})
            _, pending = await asyncio.wait(tasks, timeout=timeout_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)
        with contextlib.suppress(Exception):
            await self.commit_finished(consumer)
