"""Topic and consumer-group administration: create missing topics, read committed offsets."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.structs import TopicPartition

from video_runner.adapters.error_classes import classify_kafka
from video_runner.adapters.kafka.connection import KafkaConnection
from video_runner.errors import DependencyUnavailable

log = logging.getLogger(__name__)


def new_topics(
    topics: Sequence[str], *, partitions: int, replication: int, configs: Mapping[str, str]
) -> list[NewTopic]:
    """The creation requests of ``topics``, each with the same partitions, replicas and configs."""
    return [
        NewTopic(t, partitions, replication, topic_configs=dict(configs) or None) for t in topics
    ]


async def ensure_topics(
    connection: KafkaConnection,
    topics: Sequence[str],
    *,
    partitions: int,
    replication: int,
    configs: Mapping[str, str] | None = None,
) -> None:
    """Create missing topics (existing ones are left as they are), with ``configs`` (such as
    ``min.insync.replicas``).

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
                new_topics(
                    missing, partitions=partitions, replication=replication, configs=configs or {}
                )
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


class GroupOffsets:
    """Implements ``ports.ConsumedOffsets``: what a consumer group has committed, per partition.

    One admin client and one group-less consumer, started on first use and kept: the reaper asks
    three times per pass. A Kafka error closes both, so the next call connects afresh.
    """

    def __init__(self, connection: KafkaConnection) -> None:
        self._connection = connection
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._starting = asyncio.Lock()

    async def committed(self, group_id: str, topic: str) -> dict[int, int]:
        try:
            admin = await self._admin_client()
            offsets = await admin.list_consumer_group_offsets(group_id)
        except KafkaError as exc:
            await self.close()
            raise classify_kafka(exc, what=f"offsets of group {group_id}") from exc
        return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}

    async def end_offsets(self, topic: str) -> dict[int, int]:
        try:
            admin = await self._admin_client()
            partitions = _partitions_of(await admin.describe_topics([topic]), topic)
            consumer = await self._offsets_consumer()
            ends = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        except KafkaError as exc:
            await self.close()
            raise classify_kafka(exc, what=f"end offsets of {topic}") from exc
        return {tp.partition: offset for tp, offset in ends.items()}

    async def close(self) -> None:
        admin, self._admin = self._admin, None
        consumer, self._consumer = self._consumer, None
        try:
            if admin is not None:
                await admin.close()
        finally:
            if consumer is not None:
                await consumer.stop()

    async def _admin_client(self) -> AIOKafkaAdminClient:
        async with self._starting:
            if self._admin is None:
                admin = AIOKafkaAdminClient(**self._connection.options())
                await _start_or_close(admin.start, admin.close)
                self._admin = admin
            return self._admin

    async def _offsets_consumer(self) -> AIOKafkaConsumer:
        async with self._starting:
            if self._consumer is None:
                consumer = AIOKafkaConsumer(**self._connection.options(), group_id=None)
                await _start_or_close(consumer.start, consumer.stop)
                self._consumer = consumer
            return self._consumer


async def _start_or_close(
    start: Callable[[], Awaitable[None]], close: Callable[[], Awaitable[None]]
) -> None:
    """Start a client; one that failed half-way is closed (its sockets) before the error goes."""
    try:
        await start()
    except BaseException:
        await close()
        raise


async def topic_partitions(connection: KafkaConnection, topic: str) -> list[int]:
    """The partition ids of ``topic`` (from the cluster's metadata, through an admin client)."""
    admin = AIOKafkaAdminClient(**connection.options())
    try:
        await admin.start()
        described = await admin.describe_topics([topic])
    except KafkaError as exc:
        raise classify_kafka(exc, what=f"partitions of {topic}") from exc
    finally:
        await admin.close()
    return _partitions_of(described, topic)


def _partitions_of(described: list[dict[str, Any]], topic: str) -> list[int]:
    found = [p["partition"] for t in described if t["topic"] == topic for p in t["partitions"]]
    if not found:
        raise DependencyUnavailable("kafka", f"topic {topic} has no partitions (yet)")
    return found
