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
from video_runner.adapters.kafka.connection import KafkaConnection
from video_runner.adapters.kafka.producer import KafkaPublisher, encode_json
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
        consumer = self._consumer()
        tp = TopicPartition(topic, partition)
        try:
            await consumer.start()
            ends = await consumer.end_offsets([tp])
        except KafkaError as exc:
            raise classify_kafka(exc, what=f"end offset of {topic}/{partition}") from exc
        finally:
            await consumer.stop()
        return int(ends[tp])

    async def publish_at(
        self, topic: str, partition: int, key: str, value: Mapping[str, Any]
    ) -> Delivery:
        return await self._publisher.publish_to(topic, partition, key, encode_json(value))

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
