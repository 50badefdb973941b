"""The aiokafka-facing shell of a consumer loop: safe settings, start and stop, rebalances.

What the loop does with the records (commits, revocation, drain) is the dispatch core's
(``dispatch.Dispatcher``), and what it does with their failures the retry policy's
(``retrying.RetryingHandler``); this module only plugs the real consumer into them.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from video_runner.adapters.kafka.connection import KafkaConnection
from video_runner.adapters.kafka.dispatch import Dispatcher, DispatchPolicy
from video_runner.adapters.kafka.loop_stats import LoopStats
from video_runner.adapters.kafka.protocols import RecordHandler
from video_runner.domain.retry_policy import RetryPolicy
from video_runner.errors import DependencyUnavailable


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
        batch_size: int,
        # From the settings (bootstrap.clients.consumer_loop), which state their defaults.
        batch_wait_ms: int,
        max_poll_interval_ms: int,
        session_timeout_ms: int,
        heartbeat_interval_ms: int,
        retry: RetryPolicy,
        group_instance_id: str | None,
        poll_timeout_ms: int = 250,
    ) -> None:
        self.topic = topic
        self.group_id = group_id
        self._dispatch = Dispatcher(
            topic,
            handler,
            DispatchPolicy(
                max_in_flight=max_in_flight,
                batch_size=batch_size,
                batch_wait_ms=batch_wait_ms,
                retry=retry,
                poll_timeout_ms=poll_timeout_ms,
            ),
        )
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
            # In batch mode one batch runs at a time; otherwise one fetch fills the free slots.
            "max_poll_records": batch_size or max_in_flight,
            # A topic created after this consumer started is seen within this, not 5 minutes.
            "metadata_max_age_ms": 30_000,
        }
        if group_instance_id is not None:
            # Static membership: a replica restarted under the same id within the session
            # timeout gets its partitions back without a rebalance of the whole group.
            self._options["group_instance_id"] = group_instance_id
        self._started: AIOKafkaConsumer | None = None

    @property
    def options(self) -> dict[str, Any]:
        """A copy of what this loop's aiokafka consumer is made with (group, timeouts, static
        membership)."""
        return dict(self._options)

    @property
    def stats(self) -> LoopStats:
        return self._dispatch.stats

    @property
    def committed(self) -> dict[TopicPartition, int]:
        """The last offset this member committed, per partition (for the lag metric)."""
        return self._dispatch.committed

    def lag(self) -> dict[int, int]:
        """Per assigned partition: the high watermark minus this member's last commit (only
        where both are known)."""
        if self._started is None:
            return {}
        lags = {}
        for tp in self._started.assignment():
            highwater = self._started.highwater(tp)
            committed = self.committed.get(tp)
            if highwater is not None and committed is not None:
                lags[tp.partition] = max(highwater - committed, 0)
        return lags

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
            await self._dispatch.run(self.consumer, stop, drain_timeout_s=drain_timeout_s)
        finally:
            await self.close()

    async def close(self) -> None:
        """Leave the group and close the consumer, if it was started (else nothing)."""
        consumer, self._started = self._started, None
        if consumer is not None:
            await consumer.stop()

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._dispatch.on_revoked(self.consumer, revoked)

    def on_assigned(self, assigned: set[TopicPartition]) -> None:
        self._dispatch.on_assigned(assigned)
