"""The acknowledged JSON publisher: idempotent producer, acks=all, every send awaited."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from video_runner.adapters.error_classes import classify_kafka
from video_runner.adapters.kafka.connection import KafkaConnection
from video_runner.domain.compact_json import compact_json
from video_runner.errors import DependencyUnavailable
from video_runner.ports import Delivery


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
        await self.publish_raw(topic, key.encode(), compact_json(value), headers or {})

    async def publish_many(
        self, topic: str, messages: Sequence[tuple[str, Mapping[str, Any]]], *, spread: bool = False
    ) -> list[Delivery]:
        """Send all, then wait for every acknowledgement: one round trip for a whole batch."""
        try:
            targets: list[int | None] = [None] * len(messages)
            if spread:
                partitions = sorted(await self._producer.partitions_for(topic))
                targets = [partitions[i % len(partitions)] for i in range(len(messages))]
            futures = [
                await self._producer.send(
                    topic, compact_json(value), key=key.encode(), partition=target
                )
                for (key, value), target in zip(messages, targets, strict=True)
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

    async def publish_to(self, topic: str, partition: int, key: str, value: bytes) -> Delivery:
        """Publish to one partition; returns where it was stored, once acknowledged."""
        try:
            future = await self._producer.send(topic, value, key=key.encode(), partition=partition)
            metadata = await future
        except KafkaError as exc:
            raise classify_kafka(exc, what=f"publish to {topic}/{partition}") from exc
        return Delivery(metadata.partition, metadata.offset)

    async def publish_raw(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Mapping[str, str]
    ) -> None:
        encoded = [(name, text.encode("utf-8")) for name, text in headers.items()]
        try:
            future = await self._producer.send(topic, value, key=key, headers=encoded)
            await future
        except KafkaError as exc:
            raise classify_kafka(exc, what=f"publish to {topic}") from exc
