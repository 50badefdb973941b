"""The local Kafka (tools/stack) works for consumer groups with manual commits.

Runs against the real single-node KRaft broker started by `tools/stack/stack.sh up`;
connection settings come from KAFKA_BOOTSTRAP_SERVERS (see .stack/env).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import OffsetAndMetadata

from video_runner.adapters.kafka import GroupOffsets
from video_runner.adapters.kafka.connection import KafkaConnection

pytestmark = pytest.mark.integration

WAIT_S = 30.0


def _bootstrap() -> str:
    value = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not value:
        pytest.fail(
            "KAFKA_BOOTSTRAP_SERVERS is not set: "
            "run `bash tools/stack/stack.sh up` and source .stack/env"
        )
    return value


@pytest_asyncio.fixture
async def topic() -> AsyncIterator[str]:
    """A fresh single-partition topic, deleted afterwards."""
    name = f"it-stack-{uuid.uuid4().hex}"
    admin = AIOKafkaAdminClient(bootstrap_servers=_bootstrap())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
        yield name
        await admin.delete_topics([name])
    finally:
        await admin.close()


async def _produce(topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=_bootstrap(), acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()


def _consumer(topic: str, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=_bootstrap(),
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )


async def _take(consumer: AIOKafkaConsumer, count: int) -> list[tuple[int, bytes]]:
    """Fetches until `count` records arrived (or fails after WAIT_S); returns (offset, value)."""
    got: list[tuple[int, bytes]] = []

    async def loop() -> None:
        while len(got) < count:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                got.extend((r.offset, r.value) for r in records if r.value is not None)

    await asyncio.wait_for(loop(), WAIT_S)
    return got


async def test_a_message_produced_is_consumed_once_by_a_group_with_manual_commit(
    topic: str,
) -> None:
    """Messages are delivered once to a group member; an explicit commit stores the next offset."""
    group = f"it-group-{uuid.uuid4().hex}"
    values = [f"message-{i}".encode() for i in range(3)]
    await _produce(topic, values)

    consumer = _consumer(topic, group)
    await consumer.start()
    try:
        got = await _take(consumer, len(values))
        assert [v for _, v in got] == values
        assert [o for o, _ in got] == [0, 1, 2]

        tp = TopicPartition(topic, 0)
        await consumer.commit({tp: OffsetAndMetadata(got[-1][0] + 1, "")})
        assert await consumer.committed(tp) == len(values)

        # nothing is delivered a second time to the same member
        again = await consumer.getmany(timeout_ms=1000)
        assert not any(again.values())
    finally:
        await consumer.stop()


async def test_a_new_consumer_in_the_same_group_resumes_after_the_committed_offset(
    topic: str,
) -> None:
    """A consumer that joins the group later starts right after the last committed offset."""
    group = f"it-group-{uuid.uuid4().hex}"
    values = [f"message-{i}".encode() for i in range(5)]
    await _produce(topic, values)
    tp = TopicPartition(topic, 0)

    first = _consumer(topic, group)
    await first.start()
    try:
        got = await _take(first, len(values))
        assert [v for _, v in got] == values
        # commit only the first three as processed
        await first.commit({tp: OffsetAndMetadata(3, "")})
    finally:
        await first.stop()

    second = _consumer(topic, group)
    await second.start()
    try:
        rest = await _take(second, 2)
        assert rest == [(3, b"message-3"), (4, b"message-4")]
    finally:
        await second.stop()


async def test_group_offsets_tell_the_end_of_a_topic_from_what_a_group_committed(
    topic: str,
) -> None:
    """The reaper's view of a results topic: its end offsets, and a group's commits below them."""
    group = f"it-group-{uuid.uuid4().hex}"
    await _produce(topic, [b"a", b"b", b"c", b"d"])
    consumer = _consumer(topic, group)
    await consumer.start()
    try:
        await _take(consumer, 4)
        await consumer.commit({TopicPartition(topic, 0): OffsetAndMetadata(1, "")})
    finally:
        await consumer.stop()
    offsets = GroupOffsets(KafkaConnection(bootstrap_servers=_bootstrap()))
    try:
        assert await offsets.end_offsets(topic) == {0: 4}
        assert await offsets.committed(group, topic) == {0: 1}
        # The same clients answer again, and see what was produced since.
        await _produce(topic, [b"e"])
        assert await offsets.end_offsets(topic) == {0: 5}
        assert await offsets.committed(group, topic) == {0: 1}
    finally:
        await offsets.close()
    await offsets.close()  # closing twice is harmless
