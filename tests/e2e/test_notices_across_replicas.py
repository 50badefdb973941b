"""Completion notices with replicas and a crash: one `prediction_events` message per event."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from support.documents import stored_document
from support.stack import (
    create_topic,
    free_port,
    isolated_settings,
    service_process,
    store_of,
    submit_video,
    wait_for,
)
from support.videos import make_video
from video_runner.adapters.kafka.admin import topic_partitions
from video_runner.adapters.kafka.connection import KafkaConnection

VIDEOS = 6
#: Short, so the surviving outbox replica repairs what the killed one left within the test.
NOTICE_GRACE_S = 5.0


@pytest.mark.timeout(400)
async def test_two_runners_and_two_outbox_replicas_one_killed_mid_write_send_one_notice_each(
    tmp_path,
):
    """Six videos; an outbox-S3 replica is SIGKILLed as soon as the first event is predictable
    (JSON being written, notices being published). Every event ends ready, and over the whole
    prediction_events topic each event id is the key of exactly one notice, a ready one."""
    settings = isolated_settings(
        tmp_path / "work",
        completion_notice_grace_s=NOTICE_GRACE_S,
        kafka_request_timeout_ms=2_000,
    )
    await create_topic(settings, settings.topic_outbox_events, 4)
    await create_topic(settings, settings.topic_predictable_events, 4)
    await create_topic(settings, settings.topic_prediction_events, 4)
    videos = [
        make_video(tmp_path / f"v{n}.mp4", 60 + 10 * n, width=96, height=64) for n in range(VIDEOS)
    ]
    store = store_of(settings)
    logs = tmp_path / "logs"
    logs.mkdir()
    try:
        with (
            service_process("serve", settings, logs / "runner-a.log"),
            service_process("serve", settings, logs / "runner-b.log", HTTP_PORT=str(free_port())),
            service_process("inference", settings, logs / "inference.log"),
            service_process("outbox-s3", settings, logs / "outbox-a.log") as victim,
            service_process(
                "outbox-s3",
                settings,
                logs / "outbox-b.log",
                OUTBOX_HTTP_PORT=str(free_port()),
            ),
        ):
            event_ids = [await submit_video(settings, video) for video in videos]

            async def statuses() -> dict[str, str | None]:
                documents = [await stored_document(store, e) for e in event_ids]
                return {e: d and d["status"] for e, d in zip(event_ids, documents, strict=True)}

            async def first_predictable():
                now = await statuses()
                return now if any(s in {"predictable", "ready"} for s in now.values()) else None

            at_kill = await wait_for(first_predictable, timeout_s=180, every_s=0.02)
            victim.kill()

            async def all_ready():
                now = await statuses()
                return now if all(s == "ready" for s in now.values()) else None

            await wait_for(all_ready, timeout_s=240)
            # Let the survivor's sweep run past the grace period: a duplicate would show now.
            await asyncio.sleep(NOTICE_GRACE_S + 3 * settings.outbox_sweep_interval_s)
            records = await whole_topic(settings, settings.topic_prediction_events)
            pending = await store.pending_notices(datetime.now(UTC) + timedelta(days=1))
    finally:
        await store.close()

    assert any(s != "ready" for s in at_kill.values()), f"all ready before the kill: {at_kill}"
    per_key = Counter(r.key.decode() for r in records)
    assert per_key == dict.fromkeys(event_ids, 1), (logs / "outbox-b.log").read_text()[-3000:]
    notices = [json.loads(r.value) for r in records]
    assert {n["status"] for n in notices} == {"ready"}
    assert sorted(n["notice_id"] for n in notices) == sorted(f"{e}/ready" for e in event_ids)
    assert all(n["frames"] > 0 for n in notices)
    assert pending == []


async def whole_topic(settings, topic: str) -> list:
    """Every record of every partition of ``topic``, up to the end offsets taken first."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    try:
        ids = await topic_partitions(KafkaConnection(settings.kafka_bootstrap_servers), topic)
        partitions = [TopicPartition(topic, p) for p in ids]
        ends = await consumer.end_offsets(partitions)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records = []
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()
