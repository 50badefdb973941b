"""The completion notices' topic partition by partition: where a key goes, its end, a search.

``prediction_events`` notices are published to an explicit partition (the one the default
partitioner gives their key, so consumers see them where they expect them), after the
partition's end offset was recorded: the sweep can then search exactly the stretch of the log
where an acknowledged notice must be (docs/decisions/0008).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2
from aiokafka.structs import TopicPartition

from video_runner.adapters.error_classes import classify_kafka
from video_runner.adapters.kafka.admin import topic_partitions
from video_runner.adapters.kafka.connection import KafkaConnection
from video_runner.adapters.kafka.producer import KafkaPublisher
from video_runner.domain.compact_json import compact_json
from video_runner.errors import DependencyUnavailable
from video_runner.ports import Delivery

_SEARCH_POLL_MS = 500
_SEARCH_TIMEOUT_S = 60.0


def partition_of_key(key: str, partitions: int) -> int:
    """The Java client's and aiokafka's default partitioner: murmur2 of the key bytes."""
    hashed: int = murmur2(key.encode())
    return (hashed & 0x7FFFFFFF) % partitions


class KafkaNoticeLog:
    """Implements ``ports.NoticeLog`` with the process's publisher and group-less consumers."""

    def __init__(self, connection: KafkaConnection, publisher: KafkaPublisher) -> None:
        self._connection = connection
        self._publisher = publisher
        self._partitions: dict[str, int] = {}
        # Every terminal move asks for one end offset: one connected consumer answers them all,
        # instead of a connection and a metadata round trip per video.
        self._offsets: AIOKafkaConsumer | None = None
        self._offsets_lock = asyncio.Lock()

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            **self._connection.options(),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )

    async def partition_for(self, topic: str, key: str) -> int:
        count = self._partitions.get(topic)
        if count is None:
            count = await self._publisher.partitions(topic)
            self._partitions[topic] = count
        return partition_of_key(key, count)

    async def end_offset(self, topic: str, partition: int) -> int:
        tp = TopicPartition(topic, partition)
        async with self._offsets_lock:
            try:
                if self._offsets is None:
                    consumer = self._consumer()
                    await consumer.start()
                    self._offsets = consumer
                ends = await self._offsets.end_offsets([tp])
            except KafkaError as exc:
                await self._drop_offsets_consumer()  # the next call connects afresh
                raise classify_kafka(exc, what=f"end offset of {topic}/{partition}") from exc
        return int(ends[tp])

    async def _drop_offsets_consumer(self) -> None:
        consumer, self._offsets = self._offsets, None
        if consumer is not None:
            await consumer.stop()

    async def close(self) -> None:
        async with self._offsets_lock:
            await self._drop_offsets_consumer()

    async def publish_at(
        self, topic: str, partition: int, key: str, value: Mapping[str, Any]
    ) -> Delivery:
        return await self._publisher.publish_to(topic, partition, key, compact_json(value))

    async def contains(
        self, topic: str, partition: int, start: int, key: str, notice_id: str
    ) -> bool:
        """Read ``[start, end)`` of the partition (its end when asked) for the notice."""
        consumer = self._consumer()
        tp = TopicPartition(topic, partition)
        wanted = key.encode()
        try:
            await consumer.start()
            end = int((await consumer.end_offsets([tp]))[tp])
            if end <= start:
                return False
            consumer.assign([tp])
            consumer.seek(tp, start)
            async with asyncio.timeout(_SEARCH_TIMEOUT_S):
                while await consumer.position(tp) < end:
                    batches = await consumer.getmany(tp, timeout_ms=_SEARCH_POLL_MS)
                    for record in batches.get(tp, []):
                        if record.key == wanted and _notice_id(record.value) == notice_id:
                            return True
        except TimeoutError as exc:
            raise DependencyUnavailable(
                "kafka", f"searching {topic}/{partition} from {start} took too long"
            ) from exc
        except KafkaError as exc:
            raise classify_kafka(exc, what=f"search of {topic}/{partition}") from exc
        finally:
            await consumer.stop()
        return False


def _notice_id(raw: bytes | None) -> str | None:
    try:
        value = json.loads(raw or b"")
    except (ValueError, RecursionError):
        return None
    found = value.get("notice_id") if isinstance(value, dict) else None
    return found if isinstance(found, str) else None


class KafkaNoticeFeed:
    """Implements ``ports.NoticeFeed``: follows a topic from its end, with no consumer group.

    ``start`` takes every partition's end offset; call it before the event is submitted, so its
    notice, published later, cannot be missed.
    """

    def __init__(self, connection: KafkaConnection) -> None:
        self._connection = connection
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self, topic: str) -> None:
        consumer = AIOKafkaConsumer(
            **self._connection.options(),
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
        )
        try:
            await self._seek_to_end(consumer, topic)
        except KafkaError as exc:
            await consumer.stop()
            raise classify_kafka(exc, what=f"following {topic}") from exc
        except BaseException:
            await consumer.stop()
            raise
        self._consumer = consumer

    async def _seek_to_end(self, consumer: AIOKafkaConsumer, topic: str) -> None:
        partitions = await topic_partitions(self._connection, topic)
        await consumer.start()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        ends = await consumer.end_offsets(tps)
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, ends[tp])

    async def poll(self, timeout_s: float) -> list[tuple[bytes | None, bytes | None]]:
        """The (key, value) pairs that arrived, waiting at most ``timeout_s`` for some."""
        if self._consumer is None:
            raise DependencyUnavailable("kafka", "the notice feed is not started")
        try:
            batches = await self._consumer.getmany(timeout_ms=int(timeout_s * 1000))
        except KafkaError as exc:
            raise classify_kafka(exc, what="following notices") from exc
        return [(r.key, r.value) for records in batches.values() for r in records]

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
