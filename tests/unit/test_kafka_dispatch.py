"""The consumer loop's dispatch core (decision 0003), driven by a fake consumer: no broker.

The fake keeps one log per partition and a fetch position per partition, honours pause, resume
and seek, and records every commit, the way faststream's test broker stands in for Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import math
import time
from collections.abc import Callable, Mapping, Sequence

import pytest
from aiokafka.errors import RequestTimedOutError
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata, TopicPartition
from pymongo.errors import AutoReconnect

from video_runner.adapters.kafka.dispatch import Dispatcher, DispatchPolicy
from video_runner.domain import retry_policy
from video_runner.domain.backoff import backoff_delay
from video_runner.domain.retry_policy import RetryPolicy
from video_runner.errors import DependencyUnavailable, ErrorCode, PermanentError

TOPIC = "t"
P0 = TopicPartition(TOPIC, 0)
P1 = TopicPartition(TOPIC, 1)


def record(tp: TopicPartition, offset: int) -> ConsumerRecord:
    value = f"{tp.partition}:{offset}".encode()
    return ConsumerRecord(TOPIC, tp.partition, offset, 0, 0, None, value, None, 0, len(value), [])


class FakeConsumer:
    """A broker-less consumer: what ``Dispatcher`` sees of aiokafka, with a log per partition."""

    def __init__(self, lengths: Mapping[TopicPartition, int]) -> None:
        self.logs = {tp: [record(tp, o) for o in range(n)] for tp, n in lengths.items()}
        self.assigned = set(lengths)
        self.positions = dict.fromkeys(lengths, 0)
        self.paused: set[TopicPartition] = set()
        self.commits: list[dict[TopicPartition, int]] = []
        self.seeks: list[tuple[TopicPartition, int]] = []
        self.polls = 0

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def pause(self, *partitions: TopicPartition) -> None:
        self.paused |= set(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self.paused -= set(partitions)

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[ConsumerRecord]]:
        self.polls += 1
        budget = max_records if max_records is not None else math.inf
        fetched: dict[TopicPartition, list[ConsumerRecord]] = {}
        wanted = set(partitions) or self.assigned
        for tp in sorted(wanted - self.paused):
            while budget > 0 and self.positions[tp] < len(self.logs[tp]):
                fetched.setdefault(tp, []).append(self.logs[tp][self.positions[tp]])
                self.positions[tp] += 1
                budget -= 1
        # Like the real poll, an empty fetch waits a little (bounded here to keep tests fast).
        await asyncio.sleep(0 if fetched else min(timeout_ms, 2) / 1000)
        return fetched

    async def commit(self, offsets: Mapping[TopicPartition, OffsetAndMetadata]) -> None:
        self.commits.append({tp: meta.offset for tp, meta in offsets.items()})

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.seeks.append((partition, offset))
        self.positions[partition] = offset

    def committed(self, tp: TopicPartition) -> int | None:
        """The last offset committed for ``tp``, as the broker would keep it."""
        found = [commit[tp] for commit in self.commits if tp in commit]
        return found[-1] if found else None


class Handler:
    """Records what it handles; each record's behaviour is chosen by the test."""

    def __init__(self, behaviour: Callable[[ConsumerRecord], object] | None = None) -> None:
        self.behaviour = behaviour
        self.calls: list[tuple[int, int]] = []
        self.done: list[tuple[int, int]] = []
        self.cancelled: list[tuple[int, int]] = []
        self.dead: list[tuple[tuple[int, int], PermanentError]] = []
        self.gates: dict[tuple[int, int], asyncio.Event] = {}

    def gate(self, tp: TopicPartition, offset: int) -> asyncio.Event:
        """An event the handler waits for before finishing this record."""
        return self.gates.setdefault((tp.partition, offset), asyncio.Event())

    async def handle(self, record: ConsumerRecord) -> None:
        key = (record.partition, record.offset)
        self.calls.append(key)
        try:
            if key in self.gates:
                await self.gates[key].wait()
            outcome = self.behaviour(record) if self.behaviour else None
            if asyncio.iscoroutine(outcome):
                await outcome
        except asyncio.CancelledError:
            self.cancelled.append(key)
            raise
        self.done.append(key)

    async def dead_letter(self, record: ConsumerRecord, error: PermanentError) -> None:
        self.dead.append(((record.partition, record.offset), error))


class BatchRecorder(Handler):
    """A batch handler: fails or blocks a whole batch as the test says."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[tuple[int, int]]] = []
        self.failures_left = 0
        self.block: asyncio.Event | None = None

    async def handle_batch(self, records: Sequence[ConsumerRecord]) -> None:
        self.batches.append([(r.partition, r.offset) for r in records])
        if self.block is not None:
            await self.block.wait()
        if self.failures_left:
            self.failures_left -= 1
            raise DependencyUnavailable("mongodb", "primary stepped down")
        self.done.extend((r.partition, r.offset) for r in records)


async def eventually(condition: Callable[[], object], timeout_s: float = 5.0) -> None:
    # The conditions read plain state of the fake and the handler: polling is simpler than an
    # event per condition, and the timeout turns a hang into a failure.
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.002)


@contextlib.asynccontextmanager
async def running(dispatcher: Dispatcher, consumer: FakeConsumer, drain_timeout_s: float = 1.0):
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(consumer, stop, drain_timeout_s=drain_timeout_s))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)


def policy(*, retry_initial_s: float = 0.001, retry_max_s: float = 0.01, **overrides: int):
    retry = RetryPolicy(initial_s=retry_initial_s, max_s=retry_max_s, max_attempts=3)
    values: dict = {"max_in_flight": 8, "retry": retry, "batch_wait_ms": 50}
    values.update(overrides)
    return DispatchPolicy(**values)


@pytest.fixture
def delays(monkeypatch):
    """Every backoff the retry policy gives the core, as (attempt, initial, maximum); the sleeps
    are short."""
    asked: list[tuple[int, float, float]] = []

    def record_delay(attempt: int, initial: float, maximum: float) -> float:
        asked.append((attempt, initial, maximum))
        return 0.001

    monkeypatch.setattr(retry_policy, "backoff_delay", record_delay)
    return asked


async def test_only_the_contiguous_finished_prefix_is_committed():
    """Records finish out of order; the commit advances only over an unbroken finished run."""
    consumer, handler = FakeConsumer({P0: 4}), Handler()
    gates = [handler.gate(P0, offset) for offset in range(4)]
    dispatcher = Dispatcher(TOPIC, handler, policy())
    await dispatcher.poll_once(consumer)

    gates[1].set()
    gates[3].set()
    await eventually(lambda: len(handler.done) == 2)
    await dispatcher.commit_finished(consumer)
    assert consumer.commits == []

    gates[0].set()
    await eventually(lambda: len(handler.done) == 3)
    await dispatcher.commit_finished(consumer)
    assert consumer.commits == [{P0: 2}]

    gates[2].set()
    await eventually(lambda: len(handler.done) == 4)
    await dispatcher.commit_finished(consumer)
    assert consumer.commits == [{P0: 2}, {P0: 4}]
    assert dispatcher.committed == {P0: 4}


async def test_retriable_errors_retry_with_backoff_and_never_commit(delays):
    """A retriable failure is retried in place with growing backoff; nothing is committed
    meanwhile and polling goes on; once it succeeds its offset is committed."""
    failing = True

    def behaviour(_):
        if failing:
            raise DependencyUnavailable("s3", "connection refused")

    consumer, handler = FakeConsumer({P0: 1}), Handler(behaviour)
    dispatcher = Dispatcher(TOPIC, handler, policy(retry_initial_s=0.5, retry_max_s=30.0))
    async with running(dispatcher, consumer):
        await eventually(lambda: len(handler.calls) >= 5)
        polls = consumer.polls
        await eventually(lambda: consumer.polls > polls + 3)
        assert consumer.commits == []
        assert handler.dead == []
        failing = False
        await eventually(lambda: consumer.committed(P0) == 1)
    attempts = [attempt for attempt, _, _ in delays]
    assert attempts == list(range(len(attempts)))
    assert len(attempts) >= 5
    assert {(initial, maximum) for _, initial, maximum in delays} == {(0.5, 30.0)}
    assert dispatcher.stats.retries == len(attempts)


async def test_permanent_errors_are_dead_lettered_then_committed():
    """A permanent error goes to the handler's dead letter, then its offset counts as finished."""

    def behaviour(record):
        if record.offset == 0:
            raise PermanentError("not a video", code=ErrorCode.SCHEMA)

    consumer, handler = FakeConsumer({P0: 2}), Handler(behaviour)
    dispatcher = Dispatcher(TOPIC, handler, policy())
    async with running(dispatcher, consumer):
        await eventually(lambda: consumer.committed(P0) == 2)
    assert [(key, error.code) for key, error in handler.dead] == [((0, 0), ErrorCode.SCHEMA)]
    assert handler.calls.count((0, 0)) == 1


async def test_unexpected_errors_are_tried_three_times_then_dead_lettered_as_internal(delays):
    """A bug is retried twice more, then dead-lettered as ``internal``; the loop never crashes."""

    def behaviour(_):
        raise KeyError("boom")

    consumer, handler = FakeConsumer({P0: 1}), Handler(behaviour)
    dispatcher = Dispatcher(TOPIC, handler, policy())
    async with running(dispatcher, consumer):
        await eventually(lambda: consumer.committed(P0) == 1)
    assert handler.calls == [(0, 0)] * 3
    [(key, error)] = handler.dead
    assert key == (0, 0)
    assert error.code == ErrorCode.INTERNAL
    assert "KeyError" in str(error)


async def test_batch_mode_commits_a_batch_once_it_is_durable_and_retries_it_whole(delays):
    """One batch spans partitions; a retriable failure retries the same whole batch, and only
    its success commits every partition's records."""
    consumer, handler = FakeConsumer({P0: 2, P1: 1}), BatchRecorder()
    handler.failures_left = 2
    dispatcher = Dispatcher(TOPIC, handler, policy(max_in_flight=1, batch_size=10))
    async with running(dispatcher, consumer):
        await eventually(lambda: consumer.committed(P0) == 2 and consumer.committed(P1) == 1)
    whole = [(0, 0), (0, 1), (1, 0)]
    assert handler.batches == [whole, whole, whole]
    assert consumer.commits == [{P0: 2, P1: 1}]
    assert handler.calls == []


async def test_a_revoked_partitions_work_is_cancelled_and_never_committed():
    """On revocation, finished work is committed first; the revoked partition's running work is
    cancelled and its offsets are never committed, even after the loop goes on."""
    consumer, handler = FakeConsumer({P0: 1, P1: 1}), Handler()
    handler.gate(P0, 0)
    dispatcher = Dispatcher(TOPIC, handler, policy())
    dispatcher.on_assigned({P0, P1})
    await dispatcher.poll_once(consumer)
    await eventually(lambda: (1, 0) in handler.done)

    await dispatcher.on_revoked(consumer, {P0})
    consumer.assigned.discard(P0)
    await eventually(lambda: handler.cancelled == [(0, 0)])
    await dispatcher.poll_once(consumer)
    await dispatcher.commit_finished(consumer)

    assert consumer.commits == [{P1: 1}]
    assert dispatcher.stats.assigned == {P1}
    assert P0 not in dispatcher.committed


async def test_a_kept_partition_whose_records_were_in_a_cancelled_batch_is_rewound_and_refetched():
    """A batch holding records of a revoked and of a kept partition is cancelled; the kept
    partition is sought back to its first unfinished record, fetched again and committed."""
    consumer, handler = FakeConsumer({P0: 2, P1: 2}), BatchRecorder()
    handler.block = asyncio.Event()
    dispatcher = Dispatcher(TOPIC, handler, policy(max_in_flight=1, batch_size=10))
    await dispatcher.poll_once(consumer)
    await eventually(lambda: len(handler.batches) == 1)
    assert consumer.positions == {P0: 2, P1: 2}

    await dispatcher.on_revoked(consumer, {P0})
    consumer.assigned.discard(P0)
    assert consumer.seeks == [(P1, 0)]

    handler.block = None
    async with running(dispatcher, consumer):
        await eventually(lambda: consumer.committed(P1) == 2)
    assert handler.batches[1] == [(1, 0), (1, 1)]
    assert consumer.committed(P0) is None


def test_backoff_never_overflows_after_ten_thousand_attempts():
    """However long a retry loop runs, the delay stays a finite number under its cap."""
    for attempt in (10_000, 10_001, 1_000_000):
        delay = backoff_delay(attempt, 0.5, 30.0)
        assert math.isfinite(delay)
        assert 15.0 <= delay <= 30.0


async def test_drain_waits_for_running_work_then_cancels_what_is_left():
    """Shutdown lets work finish within the drain bound, commits it, and cancels the rest,
    which is never committed."""

    async def behaviour(record):
        await asyncio.sleep(0.05 if record.offset == 0 else 60)

    consumer, handler = FakeConsumer({P0: 2}), Handler(behaviour)
    dispatcher = Dispatcher(TOPIC, handler, policy())
    await dispatcher.poll_once(consumer)
    started = time.monotonic()
    await dispatcher.drain(consumer, timeout_s=0.3)
    elapsed = time.monotonic() - started

    assert handler.done == [(0, 0)]
    assert handler.cancelled == [(0, 1)]
    assert consumer.commits == [{P0: 1}]
    assert 0.25 <= elapsed < 5


async def test_partitions_are_paused_at_max_in_flight_while_polling_goes_on():
    """At the in-flight limit every partition is paused, yet getmany keeps being called, so the
    member keeps its place in the group however long the handlers run."""
    consumer, handler = FakeConsumer({P0: 5}), Handler()
    for offset in range(5):
        handler.gate(P0, offset)
    dispatcher = Dispatcher(TOPIC, handler, policy(max_in_flight=2))
    async with running(dispatcher, consumer):
        await eventually(lambda: len(handler.calls) == 2)
        polls = consumer.polls
        await eventually(lambda: consumer.polls > polls + 3)
        assert consumer.paused == {P0}
        assert len(handler.calls) == 2
        for gate in handler.gates.values():
            gate.set()
        await eventually(lambda: consumer.committed(P0) == 5)


@pytest.mark.parametrize(
    "fault",
    [OSError(errno.ENOSPC, "No space left on device"), MemoryError()],
    ids=["disk-full", "out-of-memory"],
)
async def test_a_local_resource_fault_is_waited_out_not_dead_lettered(delays, fault):
    """A full disk or no memory is the machine's fault, not the message's: retried with backoff
    like a dependency that is down, never dead-lettered as internal; committed once it passes."""
    failures = [fault] * 5

    def behaviour(_):
        if failures:
            raise failures.pop()

    consumer, handler = FakeConsumer({P0: 1}), Handler(behaviour)
    dispatcher = Dispatcher(TOPIC, handler, policy())
    async with running(dispatcher, consumer):
        await eventually(lambda: consumer.committed(P0) == 1)
    assert handler.dead == []
    assert len(delays) == 5
    assert dispatcher.stats.retries == 5


async def test_a_failed_commit_is_retried_with_the_next_commit():
    """The broker refuses a commit for a passing reason: the same offsets are sent again, so a
    finished record is committed even if nothing else finishes after it."""

    class FlakyCommits(FakeConsumer):
        failures = 2

        async def commit(self, offsets):
            if self.failures:
                self.failures -= 1
                raise RequestTimedOutError
            await super().commit(offsets)

    consumer, handler = FlakyCommits({P0: 1}), Handler()
    dispatcher = Dispatcher(TOPIC, handler, policy())
    async with running(dispatcher, consumer):
        await eventually(lambda: consumer.committed(P0) == 1)
    assert consumer.failures == 0
    assert handler.done == [(0, 0)]


async def test_a_permanent_failure_of_a_batch_is_handled_one_record_at_a_time_at_once(delays):
    """Trying a permanent failure again cannot help: the batch is not retried whole, its records
    are handled one at a time, and only the bad one is dead-lettered."""

    class PoisonedBatch(BatchRecorder):
        async def handle_batch(self, records):
            self.batches.append([(r.partition, r.offset) for r in records])
            raise PermanentError("one result is not JSON", code=ErrorCode.BAD_JSON)

    def behaviour(record):
        if record.offset == 1:
            raise PermanentError("not JSON", code=ErrorCode.BAD_JSON)

    consumer, handler = FakeConsumer({P0: 3}), PoisonedBatch()
    handler.behaviour = behaviour
    dispatcher = Dispatcher(TOPIC, handler, policy(max_in_flight=1, batch_size=10))
    async with running(dispatcher, consumer):
        await eventually(lambda: consumer.committed(P0) == 3)
    assert handler.batches == [[(0, 0), (0, 1), (0, 2)]]
    assert handler.calls == [(0, 0), (0, 1), (0, 2)]
    assert [(key, error.code) for key, error in handler.dead] == [((0, 1), ErrorCode.BAD_JSON)]
    assert delays == []


async def test_a_dead_letter_that_fails_is_waited_out_until_it_is_recorded(delays):
    """Giving up would lose the record of a failure: the dead-letter is tried again with backoff,
    nothing is committed meanwhile, and the loop says what it waits for."""
    broker_down = True

    class DeadLetterWaits(Handler):
        async def dead_letter(self, record, error):
            if broker_down:
                raise DependencyUnavailable("kafka", "no leader for the dead-letter topic")
            await super().dead_letter(record, error)

    def behaviour(_):
        raise PermanentError("not a video", code=ErrorCode.NOT_A_VIDEO)

    consumer, handler = FakeConsumer({P0: 1}), DeadLetterWaits(behaviour)
    dispatcher = Dispatcher(TOPIC, handler, policy())
    async with running(dispatcher, consumer):
        await eventually(lambda: len(delays) >= 3)
        assert dispatcher.stats.waiting_for == {"kafka": 1}
        assert consumer.commits == []
        broker_down = False
        await eventually(lambda: consumer.committed(P0) == 1)
    assert [key for key, _ in handler.dead] == [(0, 0)]
    assert handler.calls == [(0, 0)]
    assert dispatcher.stats.waiting_for == {}


async def test_a_library_error_that_escaped_its_adapter_is_classified_by_the_error_tables(delays):
    """A raw PyMongo AutoReconnect is MongoDB down, whoever let it through: waited out past the
    tries of an unexpected error, never dead-lettered as internal, and named while it lasts."""
    failures = [AutoReconnect("primary stepped down")] * 5
    waited_for: list[dict[str, int]] = []

    def behaviour(_):
        waited_for.append(dict(dispatcher.stats.waiting_for))
        if failures:
            raise failures.pop()

    consumer, handler = FakeConsumer({P0: 1}), Handler(behaviour)
    dispatcher = Dispatcher(TOPIC, handler, policy())
    async with running(dispatcher, consumer):
        await eventually(lambda: consumer.committed(P0) == 1)
    assert handler.dead == []
    assert len(handler.calls) == 6
    assert waited_for[1:] == [{"mongodb": 1}] * 5
    assert dispatcher.stats.waiting_for == {}
