"""Kafka adapter (aiokafka): an acknowledged JSON publisher and a consumer loop that loses nothing.

The consumer loop follows the pitfalls written down in docs/decisions/0003-consumer-loop.md:

* one task keeps calling ``getmany`` while partitions are paused, so a handler that runs longer
  than ``max_poll_interval_ms`` never makes the member leave the group;
* offsets are committed explicitly, per partition, and only over the contiguous finished prefix;
* retriable errors are retried with backoff and commit nothing; permanent ones are the handler's
  to record and dead-letter, after which the offset is committed and the partition moves on;
* on revocation, unfinished work of the revoked partitions is cancelled, never committed;
* in batch mode (``batch_size``), one batch of up to ``batch_size`` records is handled at a time
  by ``handle_batch`` and its offsets are committed once the whole batch is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import CommitFailedError, KafkaError, TopicAlreadyExistsError
from aiokafka.helpers import create_ssl_context
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata, TopicPartition

from video_runner.adapters.error_classes import classify_kafka
from video_runner.domain.offsets import PartitionProgress
from video_runner.errors import (
    ConfigurationError,
    DependencyUnavailable,
    ErrorCode,
    PermanentError,
    RetriableError,
)
from video_runner.ports import Delivery

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class KafkaConnection:
    """How to reach the cluster (plaintext locally; SASL and/or TLS in production)."""

    bootstrap_servers: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: str | None = None
    client_id: str = "video-runner"
    request_timeout_ms: int = 30_000

    def options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
            "client_id": self.client_id,
            "request_timeout_ms": self.request_timeout_ms,
        }
        if "SSL" in self.security_protocol:
            options["ssl_context"] = create_ssl_context(cafile=self.ssl_cafile)
        if self.security_protocol.startswith("SASL"):
            options["sasl_mechanism"] = self.sasl_mechanism or "PLAIN"
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password
        return options


async def ensure_topics(
    connection: KafkaConnection, topics: Sequence[str], *, partitions: int, replication: int
) -> None:
    """Create missing topics (existing ones are left as they are).

    A consumer subscribed to a topic that does not exist yet would only notice it at its next
    metadata refresh (minutes later); creating it up front makes a fresh system start at once.
    """
    wanted = list(dict.fromkeys(topics))
    admin = AIOKafkaAdminClient(**connection.options())
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        if missing:
            response = await admin.create_topics(
                [NewTopic(t, partitions, replication) for t in missing]
            )
            # The admin client does not raise per-topic errors (a broker still starting answers
            # NOT_CONTROLLER, say): read them, and retry the whole start if one failed. Another
            # replica creating the same topic first is no failure.
            failed = [
                (topic, code)
                for topic, code, *_ in response.topic_errors
                if code not in {0, TopicAlreadyExistsError.errno}
            ]
            if failed:
                raise DependencyUnavailable("kafka", f"creating topics failed: {failed}")
            log.info("topics created", extra={"topics": missing})
        await _until_led(admin, wanted)
    except KafkaError as exc:
        raise DependencyUnavailable("kafka", f"ensure topics: {exc}") from exc
    finally:
        await admin.close()


async def _until_led(admin: AIOKafkaAdminClient, topics: list[str], timeout_s: float = 30) -> None:
    """Wait until every partition of ``topics`` has a leader in the broker's metadata.

    A consumer that joins its group before a new topic shows in the metadata is assigned no
    partition of it, and only notices at its next metadata refresh: start it after this.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        described = await admin.describe_topics(topics)
        led = {
            t["topic"]
            for t in described
            if t["error_code"] == 0
            and t["partitions"]
            and all(p["leader"] >= 0 for p in t["partitions"])
        }
        if led >= set(topics):
            return
        if time.monotonic() > deadline:
            waiting = sorted(set(topics) - led)
            raise DependencyUnavailable("kafka", f"topics without a leader: {waiting}")
        await asyncio.sleep(0.2)


def encode_json(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class KafkaPublisher:
    """Implements ``ports.RawPublisher``: idempotent producer, acks=all, waits for delivery."""

    def __init__(self, connection: KafkaConnection, *, linger_ms: int = 5) -> None:
        self._connection = connection
        self._linger_ms = linger_ms
        self._started: AIOKafkaProducer | None = None

    @property
    def _producer(self) -> AIOKafkaProducer:
        if self._started is None:
            raise DependencyUnavailable("kafka", "the producer is not started")
        return self._started

    async def start(self) -> None:
        # Created here, not in __init__: a client belongs to the event loop that starts it.
        producer = AIOKafkaProducer(
            **self._connection.options(),
            acks="all",
            enable_idempotence=True,
            linger_ms=self._linger_ms,
            max_batch_size=1024 * 1024,
        )
        try:
            await producer.start()
        except KafkaError as exc:
            await producer.stop()
            raise DependencyUnavailable("kafka", f"producer start: {exc}") from exc
        self._started = producer

    async def stop(self) -> None:
        if self._started is not None:
            await self._started.stop()
            self._started = None

    async def ping(self) -> None:
        """Ask the cluster for its metadata: proves a broker answers, not just a socket."""
        try:
            await self._producer.client.fetch_all_metadata()
        except KafkaError as exc:
            raise DependencyUnavailable("kafka", f"metadata: {exc}") from exc

    async def publish(
        self,
        topic: str,
        key: str,
        value: Mapping[str, Any],
        headers: Mapping[str, str] | None = None,
    ) -> None:
        await self.publish_raw(topic, key.encode(), encode_json(value), headers or {})

    async def publish_many(
        self, topic: str, messages: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> list[Delivery]:
        """Send all, then wait for every acknowledgement: one round trip for a whole batch."""
        try:
            futures = [
                await self._producer.send(topic, encode_json(value), key=key.encode())
                for key, value in messages
            ]
            metadata = await asyncio.gather(*futures)
        except KafkaError as exc:
            raise classify_kafka(exc, what=f"publish to {topic}") from exc
        return [Delivery(m.partition, m.offset) for m in metadata]

    async def partitions(self, topic: str) -> int:
        """How many partitions ``topic`` has (from the producer's metadata)."""
        try:
            found = await self._producer.partitions_for(topic)
        except KafkaError as exc:
            raise classify_kafka(exc, what=f"metadata of {topic}") from exc
        return len(found)

    async def publish_raw(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Mapping[str, str]
    ) -> None:
        encoded = [(name, text.encode("utf-8")) for name, text in headers.items()]
        try:
            future = await self._producer.send(topic, value, key=key, headers=encoded)
            await future
        except KafkaError as exc:
            raise classify_kafka(exc, what=f"publish to {topic}") from exc


class GroupOffsets:
    """Implements ``ports.ConsumedOffsets``: what a consumer group has committed, per partition."""

    def __init__(self, connection: KafkaConnection) -> None:
        self._connection = connection

    async def committed(self, group_id: str, topic: str) -> dict[int, int]:
        admin = AIOKafkaAdminClient(**self._connection.options())
        try:
            await admin.start()
            offsets = await admin.list_consumer_group_offsets(group_id)
        except KafkaError as exc:
            raise classify_kafka(exc, what=f"offsets of group {group_id}") from exc
        finally:
            await admin.close()
        return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}


class RecordHandler(Protocol):
    """What a consumer loop drives. ``handle`` returns once the record's effects are durable."""

    async def handle(self, record: ConsumerRecord[bytes, bytes]) -> None: ...

    async def dead_letter(
        self, record: ConsumerRecord[bytes, bytes], error: PermanentError
    ) -> None:
        """Record a permanent failure the handler did not catch itself (bug, poison message)."""
        ...


class BatchHandler(RecordHandler, Protocol):
    """A handler that can also take many records at once (``handle`` stays for one at a time)."""

    async def handle_batch(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        """Return once every record's effects are durable; poison records are its to dead-letter."""
        ...


@dataclass(slots=True)
class _Work:
    record: ConsumerRecord[bytes, bytes]
    task: asyncio.Task[None]


@dataclass
class LoopStats:
    """What the loop exposes for health and metrics."""

    last_poll: float = field(default_factory=time.monotonic)
    in_flight: int = 0
    committed: int = 0
    retries: int = 0
    assigned: set[TopicPartition] = field(default_factory=set)


#: 2**32 times any sensible initial delay is beyond any maximum: the exponent stops growing here,
#: so a retry loop that runs for days never overflows a float.
_MAX_EXPONENT = 32


def backoff_delay(attempt: int, initial: float, maximum: float) -> float:
    """Exponential backoff with full jitter (so replicas do not retry in step), capped."""
    ceiling: float = min(maximum, initial * (2 ** min(max(attempt, 0), _MAX_EXPONENT)))
    return random.uniform(ceiling / 2, ceiling)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka has no types
    def __init__(self, loop: ConsumerLoop) -> None:
        self._loop = loop

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._loop.on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._loop.on_assigned(set(assigned))


class ConsumerLoop:
    """Consumes one topic in a group, running up to ``max_in_flight`` records concurrently."""

    def __init__(
        self,
        *,
        connection: KafkaConnection,
        topic: str,
        group_id: str,
        handler: RecordHandler,
        max_in_flight: int,
        batch_size: int = 0,
        batch_wait_ms: int = 50,
        max_poll_interval_ms: int = 300_000,
        session_timeout_ms: int = 30_000,
        heartbeat_interval_ms: int = 3_000,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        max_unexpected_errors: int = 3,
        poll_timeout_ms: int = 250,
    ) -> None:
        self.topic = topic
        self.group_id = group_id
        self._handler = handler
        self._batch_handler: BatchHandler | None = None
        if batch_size > 0:
            if not hasattr(handler, "handle_batch"):
                raise TypeError(f"{type(handler).__name__} has no handle_batch")
            self._batch_handler = handler  # type: ignore[assignment]
            # One batch at a time: its records are committed together once it is durable.
            max_in_flight = 1
        self._batch_size = batch_size
        self._batch_wait_ms = batch_wait_ms
        self._max_in_flight = max_in_flight
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._max_unexpected = max_unexpected_errors
        self._poll_timeout_ms = poll_timeout_ms
        self._options: dict[str, Any] = {
            **connection.options(),
            "group_id": group_id,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "max_poll_interval_ms": max_poll_interval_ms,
            "session_timeout_ms": session_timeout_ms,
            "heartbeat_interval_ms": heartbeat_interval_ms,
            # Default is session_timeout_ms; a member finishing a commit needs longer than that.
            "rebalance_timeout_ms": max(session_timeout_ms, 60_000),
            "max_poll_records": batch_size or max_in_flight,
            # A topic created after this consumer started is seen within this, not 5 minutes.
            "metadata_max_age_ms": 30_000,
        }
        self._started: AIOKafkaConsumer | None = None
        self._progress: dict[TopicPartition, PartitionProgress] = {}
        self._work: dict[TopicPartition, list[_Work]] = {}
        self.stats = LoopStats()
        #: The last offset this member committed, per partition (for the lag metric).
        self.committed: dict[TopicPartition, int] = {}

    @property
    def consumer(self) -> AIOKafkaConsumer:
        if self._started is None:
            raise DependencyUnavailable("kafka", f"the {self.topic} consumer is not started")
        return self._started

    @property
    def is_started(self) -> bool:
        return self._started is not None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(**self._options)
        try:
            await consumer.start()
        except KafkaError as exc:
            await consumer.stop()
            raise DependencyUnavailable("kafka", f"consumer start: {exc}") from exc
        consumer.subscribe([self.topic], listener=_Rebalance(self))
        self._started = consumer

    async def run(self, stop: asyncio.Event, *, drain_timeout_s: float = 10.0) -> None:
        """Poll, dispatch and commit until ``stop`` is set; then drain within a bound."""
        if self._started is None:
            await self.start()
        try:
            while not stop.is_set():
                await self._poll_once()
                await self._commit_finished()
        finally:
            await self._drain(drain_timeout_s)
            await self.consumer.stop()

    async def _poll_once(self) -> None:
        in_flight = self._in_flight()
        assignment = self.consumer.assignment()
        # Paused partitions return nothing, but getmany still runs: the poll timer is reset and
        # heartbeats flow, however long the handlers take.
        if in_flight >= self._max_in_flight:
            self.consumer.pause(*assignment)
        else:
            self.consumer.resume(*assignment)
        capacity = self._batch_size or max(self._max_in_flight - in_flight, 1)
        # A batch that is not full yet is worth a short wait, not the whole poll timeout.
        wait_ms = self._batch_wait_ms if self._batch_size and not in_flight else None
        try:
            batches = await self.consumer.getmany(
                timeout_ms=wait_ms or self._poll_timeout_ms, max_records=capacity
            )
        except KafkaError as exc:
            log.warning("poll failed, retrying", extra={"topic": self.topic, "error": str(exc)})
            await asyncio.sleep(1.0)
            return
        self.stats.last_poll = time.monotonic()
        if self._batch_size:
            self._dispatch_batch(batches)
        else:
            for tp, records in batches.items():
                for record in records:
                    task = asyncio.create_task(
                        self._process(record), name=f"{self.topic}-{tp.partition}-{record.offset}"
                    )
                    self._track(tp, record, task)
        self.stats.in_flight = self._in_flight()

    def _track(
        self,
        tp: TopicPartition,
        record: ConsumerRecord[bytes, bytes],
        task: asyncio.Task[None],
    ) -> None:
        self._progress.setdefault(tp, PartitionProgress()).start(record.offset)
        self._work.setdefault(tp, []).append(_Work(record, task))

    def _dispatch_batch(
        self, batches: Mapping[TopicPartition, Sequence[ConsumerRecord[bytes, bytes]]]
    ) -> None:
        records = [record for tp_records in batches.values() for record in tp_records]
        if not records:
            return
        task = asyncio.create_task(
            self._process_batch(records), name=f"{self.topic}-batch-{records[0].offset}"
        )
        for tp, tp_records in batches.items():
            for record in tp_records:
                self._track(tp, record, task)

    async def _process_batch(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        """Retry the whole batch on retriable errors (it is idempotent); isolate anything else."""
        handler = self._batch_handler
        assert handler is not None  # noqa: S101 - batch mode is decided in __init__
        attempt = 0
        unexpected = 0
        while True:
            try:
                await handler.handle_batch(records)
            except (RetriableError, ConfigurationError) as exc:
                await self._back_off(records[0], exc, attempt)
                attempt += 1
            except Exception:
                unexpected += 1
                log.exception(
                    "unexpected failure in a batch",
                    extra={"topic": self.topic, "records": len(records), "attempt": unexpected},
                )
                if unexpected >= self._max_unexpected:
                    # One record at a time, so a bad one is dead-lettered alone.
                    for record in records:
                        await self._process(record)
                    return
                await asyncio.sleep(backoff_delay(unexpected, self._retry_initial_s, 5.0))
            else:
                return

    async def _back_off(
        self, record: ConsumerRecord[bytes, bytes], error: Exception, attempt: int
    ) -> None:
        delay = backoff_delay(attempt, self._retry_initial_s, self._retry_max_s)
        self.stats.retries += 1
        log.warning(
            "retriable failure, backing off",
            extra={
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "error": str(error),
                "delay_s": round(delay, 2),
            },
        )
        await asyncio.sleep(delay)

    def _in_flight(self) -> int:
        return sum(1 for items in self._work.values() for w in items if not w.task.done())

    async def _process(self, record: ConsumerRecord[bytes, bytes]) -> None:
        attempt = 0
        unexpected = 0
        while True:
            try:
                await self._handler.handle(record)
            except (RetriableError, ConfigurationError) as exc:
                # A configuration error mid-run (a rotated secret) is retried too: dead-lettering
                # every event until someone fixes the settings would lose them all.
                await self._back_off(record, exc, attempt)
                attempt += 1
            except PermanentError as exc:
                await self._dead_letter(record, exc)
                return
            except Exception as exc:  # a bug or an unforeseen input: never crash the loop
                unexpected += 1
                log.exception(
                    "unexpected failure",
                    extra={"topic": record.topic, "offset": record.offset, "attempt": unexpected},
                )
                if unexpected >= self._max_unexpected:
                    error = PermanentError(
                        f"internal error: {type(exc).__name__}: {exc}", code=ErrorCode.INTERNAL
                    )
                    await self._dead_letter(record, error)
                    return
                await asyncio.sleep(backoff_delay(unexpected, self._retry_initial_s, 5.0))
            else:
                return

    async def _dead_letter(
        self, record: ConsumerRecord[bytes, bytes], error: PermanentError
    ) -> None:
        attempt = 0
        while True:
            try:
                await self._handler.dead_letter(record, error)
            except Exception as exc:  # noqa: BLE001 - nothing lost: retry until it is recorded
                delay = backoff_delay(attempt, self._retry_initial_s, self._retry_max_s)
                log.warning("dead-letter failed, backing off", extra={"error": str(exc)})
                attempt += 1
                await asyncio.sleep(delay)
            else:
                return

    async def _commit_finished(self) -> None:
        offsets = self._finished_offsets()
        if not offsets:
            return
        try:
            # A commit retries retriable errors forever inside aiokafka: bound it.
            await asyncio.wait_for(self.consumer.commit(offsets), timeout=30)
        except CommitFailedError:
            log.warning("commit refused after a rebalance; another member redoes that work")
            return
        except (KafkaError, TimeoutError) as exc:
            log.warning("commit failed; the work will be redone", extra={"error": str(exc)})
            return
        self.stats.committed += len(offsets)
        for tp, meta in offsets.items():
            self.committed[tp] = meta.offset

    def _finished_offsets(self) -> dict[TopicPartition, OffsetAndMetadata]:
        """Collect finished work; the next offset to commit where a partition's prefix advanced."""
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
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

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._commit_finished()
        cancelled: set[asyncio.Task[None]] = set()
        for tp in revoked:
            for work in self._work.pop(tp, []):
                work.task.cancel()
                cancelled.add(work.task)
            self._progress.pop(tp, None)
            self.committed.pop(tp, None)
        # A batch spans partitions: records of partitions we keep that were in a cancelled batch
        # must be fetched again, or their offsets would never finish and never be committed.
        for tp, items in list(self._work.items()):
            lost = [w.record.offset for w in items if w.task in cancelled]
            if lost:
                open_offsets = [w.record.offset for w in items if not w.task.done()] + lost
                self.consumer.seek(tp, min(open_offsets))
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

    async def _drain(self, timeout_s: float) -> None:
        tasks = [w.task for items in self._work.values() for w in items if not w.task.done()]
        if tasks:
            log.info("draining in-flight work", extra={"count": len(tasks), "timeout_s": timeout_s})
            _, pending = await asyncio.wait(tasks, timeout=timeout_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)
        with contextlib.suppress(Exception):
            await self._commit_finished()
