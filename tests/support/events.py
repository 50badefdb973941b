"""Events as the video path leaves them, and inference workers that answer or lose tasks.

Shared by the integration tests of the results path and by ``bench/results_path.py``: the tasks
really go to Kafka (so their partitions and offsets are real), the pages and the document
really go to the store, through the project's own adapters.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from support.stack import partitions_now
from video_runner import bootstrap
from video_runner.contracts import PredictableEvent
from video_runner.domain.ids import task_key
from video_runner.domain.task_pages import TaskPageAssembler, TaskRecord
from video_runner.settings import Settings

OBJECT = {"class": "person", "box": [1.0, 2.0, 30.0, 40.0], "conf": 0.9}


def result(event_id: str, frame_id: int, objects: Any = None, **extra: Any) -> dict[str, Any]:
    """An ``inference_results`` message for one frame."""
    message: dict[str, Any] = {
        "event_id": event_id,
        "frame_id": frame_id,
        "timestamp_ms": frame_id * 40,
        "objects": [OBJECT] if objects is None else objects,
        "model": "test",
    }
    message.update(extra)
    return message


async def prepare_event(
    settings: Settings,
    store: Any,
    event_id: str,
    frame_ids: Sequence[int],
    *,
    total_known: bool = True,
    every_n: int = 5,
    published_notice: bool = False,
) -> None:
    """Publish one task per frame to Kafka, record the pages, and leave the document
    ``processing`` (with ``total_frames`` if ``total_known``), as the video path does; and,
    if ``published_notice``, announce it as the runner does (an outbox-S3 merge may start)."""
    await bootstrap.ensure_topics_of(settings, "test")
    publisher = bootstrap.publisher(settings, "test")
    await publisher.start()
    try:
        partitions = await publisher.partitions(settings.topic_inference_results)
        assert await store.begin(
            event_id,
            {
                "source": {"bucket": settings.bucket_videos, "object": f"input/{event_id}.mp4"},
                "sampling": {"every_n": every_n},
                "results_partitions": partitions,
            },
        )
        pages = TaskPageAssembler(settings.bucket_frames)
        for start in range(0, len(frame_ids), 1000):
            part = frame_ids[start : start + 1000]
            deliveries = await publisher.publish_many(
                settings.topic_inference_tasks,
                [(task_key(event_id, f), {"event_id": event_id, "frame_id": f}) for f in part],
            )
            for ordinal, (frame_id, delivery) in enumerate(
                zip(part, deliveries, strict=True), start
            ):
                record = TaskRecord(
                    frame_id,
                    frame_id * 40,
                    64,
                    48,
                    f"frames/{event_id}/{frame_id}.jpg",
                    delivery.partition,
                    delivery.offset,
                )
                page = pages.add(ordinal, record)
                if page is not None:
                    await store.record_task_page(event_id, page)
        for page in pages.finish():
            await store.record_task_page(event_id, page)
    finally:
        await publisher.stop()
    fields: dict[str, Any] = {"frames_published": len(frame_ids)}
    if total_known:
        fields["total_frames"] = len(frame_ids)
    await store.update_processing(event_id, fields)
    if published_notice and total_known:
        # What the runner announces once every task is published: a merge may start.
        publisher = bootstrap.publisher(settings, "test")
        await publisher.start()
        try:
            notice = PredictableEvent(event_id=event_id, status="published")
            await publisher.publish(
                settings.topic_predictable_events, event_id, notice.as_message()
            )
        finally:
            await publisher.stop()


async def publish_results(
    settings: Settings, messages: Sequence[dict[str, Any]], *, linger_ms: int = 5
) -> None:
    """Publish results keyed by frame, as inference workers do, and wait for every ack."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", linger_ms=linger_ms
    )
    await producer.start()
    try:
        futures = [
            await producer.send(
                settings.topic_inference_results,
                json.dumps(m).encode(),
                key=task_key(m["event_id"], m["frame_id"]).encode(),
            )
            for m in messages
        ]
        for future in futures:
            await future
    finally:
        await producer.stop()


async def consume_all_tasks(settings: Settings) -> None:
    """Commit the inference group's offsets at the end of ``inference_tasks``: every task
    published so far counts as consumed, as if a worker took it and lost its result."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=settings.group_inference,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        partitions = await partitions_now(settings, settings.topic_inference_tasks)
        wanted = [TopicPartition(settings.topic_inference_tasks, p) for p in sorted(partitions)]
        consumer.assign(wanted)
        ends = await consumer.end_offsets(wanted)
        await consumer.commit({tp: offset for tp, offset in ends.items() if offset > 0})
    finally:
        await consumer.stop()
