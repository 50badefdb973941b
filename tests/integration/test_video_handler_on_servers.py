"""The runner's video path against real Kafka, S3 and MongoDB-wire servers (issue: video path)."""

from __future__ import annotations

import asyncio
import json
import time

import cv2
import numpy as np
import pytest

from support.documents import stored_document
from support.objects import frame_ids_of, header, metric, s3_client, task_values
from support.stack import (
    create_topic,
    free_port,
    isolated_settings,
    publish,
    read_topic,
    running,
    service_process,
    store_of,
    submit_video,
    wait_for,
)
from support.videos import make_video, real_video, truncate
from video_runner import bootstrap

BIKES_FRAMES = 250  # bikes.mp4: 250 frames, 640x272


async def extracted(settings, event_id, timeout_s=90.0):
    store = store_of(settings)
    try:

        async def done():
            document = await stored_document(store, event_id)
            return document if document and document.get("total_frames") is not None else None

        return await wait_for(done, timeout_s=timeout_s)
    finally:
        await store.close()


async def test_a_real_video_becomes_one_task_per_sampled_frame_with_its_jpeg_in_s3(settings):
    """Every 5th frame of bikes.mp4 is uploaded as a JPEG and announced by exactly one task,
    keyed by its frame."""
    runner = bootstrap.Runner(settings)
    async with running(runner):
        event_id = await submit_video(settings, real_video("bikes.mp4"))
        document = await extracted(settings, event_id)
    expected = list(range(0, BIKES_FRAMES, 5))
    records = await read_topic(
        settings, settings.topic_inference_tasks, until=lambda r: len(r) >= len(expected)
    )
    assert frame_ids_of(records, event_id) == expected
    # Keyed by frame: one video's tasks spread over every partition (every inference worker).
    assert sorted(record.key for record in records) == sorted(
        f"{event_id}/{f}".encode() for f in expected
    )
    assert len({record.partition for record in records}) > 1
    assert document["status"] == "processing"
    assert document["total_frames"] == len(expected)
    assert document["frames_published"] == len(expected)
    assert document["video"]["width"] == 640
    assert document["video"]["height"] == 272
    objects = bootstrap.object_store(settings)
    for task in task_values(records)[:: len(expected) // 5]:
        assert task["bucket"] == settings.bucket_frames
        assert task["object"] == f"frames/{event_id}/{task['frame_id']}.jpg"
        data = await objects.get_bytes(task["bucket"], task["object"])
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (272, 640, 3)
        assert task["width"] == 640
        assert task["height"] == 272
        assert task["timestamp_ms"] == task["frame_id"] * 40  # 25 fps


async def test_the_same_event_delivered_twice_publishes_its_tasks_once(settings):
    """A redelivered event whose tasks were all published is recognised and changes nothing."""
    runner = bootstrap.Runner(settings)
    async with running(runner):
        event_id = await submit_video(settings, real_video("carphone_pristine.mp4"))
        await extracted(settings, event_id)
        event = {
            "event_id": event_id,
            "payload": {"bucket": settings.bucket_videos, "object": f"input/{event_id}.mp4"},
        }
        await publish(settings, settings.topic_outbox_events, event_id, event)

        async def duplicate_seen():
            return metric(runner.telemetry.registry, "events_duplicate_total") >= 1

        await wait_for(duplicate_seen, timeout_s=30)
    records = await read_topic(
        settings, settings.topic_inference_tasks, until=lambda r: len(r) >= 24
    )
    await asyncio.sleep(0)
    assert frame_ids_of(records, event_id) == list(range(0, 120, 5))
    assert metric(runner.telemetry.registry, "events_received_total") == 2


async def test_poison_messages_are_dead_lettered_and_never_block_their_partition(tmp_path):
    """Bad JSON, schema, id, missing object, not a video, empty, truncated: each is recorded
    with its reason and dead-lettered, and a good video behind them on the same partition is
    processed."""
    settings = isolated_settings(tmp_path / "work")
    await create_topic(settings, settings.topic_outbox_events, partitions=1)
    objects = bootstrap.object_store(settings)
    await objects.ensure_bucket(settings.bucket_videos)
    await objects.put_bytes(
        settings.bucket_videos, "input/text.mp4", b"just some text\n" * 50, "video/mp4"
    )
    await objects.put_bytes(settings.bucket_videos, "input/empty.mp4", b"", "video/mp4")
    cut = truncate(make_video(tmp_path / "cut.mp4", frames=60, width=160, height=120), keep=0.5)
    await objects.upload_file(settings.bucket_videos, "input/cut.mp4", cut, "video/mp4")

    def event(event_id, key):
        return {"event_id": event_id, "payload": {"bucket": settings.bucket_videos, "object": key}}

    poison = [
        (None, b"{not json", "bad_json"),
        ("s", json.dumps({"event_id": "schema-less"}).encode(), "schema"),
        ("x", json.dumps(event("../../etc/passwd", "input/a.mp4")).encode(), "bad_id"),
        ("m", json.dumps(event("missing-1", "input/missing.mp4")).encode(), "missing_object"),
        ("t", json.dumps(event("text-1", "input/text.mp4")).encode(), "not_a_video"),
        ("e", json.dumps(event("empty-1", "input/empty.mp4")).encode(), "empty_file"),
        ("c", json.dumps(event("cut-1", "input/cut.mp4")).encode(), "corrupt"),
    ]
    for key, value, _ in poison:
        await publish(settings, settings.topic_outbox_events, key, value)
    runner = bootstrap.Runner(settings)
    async with running(runner):
        good = await submit_video(settings, real_video("carphone_pristine.mp4"))
        await extracted(settings, good)
    dlq = await read_topic(
        settings,
        settings.dlq_topic(settings.topic_outbox_events),
        until=lambda r: len(r) >= len(poison),
    )
    # Several videos run at once, and the DLQ has several partitions: compare without order.
    assert {r.value: header(r, "error_code") for r in dlq} == {v: c for _, v, c in poison}
    assert len(dlq) == len(poison)
    assert all(header(r, "error_message") for r in dlq)
    store = store_of(settings)
    try:
        for event_id, code in [
            ("missing-1", "missing_object"),
            ("text-1", "not_a_video"),
            ("empty-1", "empty_file"),
            ("cut-1", "corrupt"),
        ]:
            document = await stored_document(store, event_id)
            assert document["status"] == "failed", event_id
            assert document["error"]["code"] == code
            assert document["error"]["message"]
    finally:
        await store.close()
    assert metric(runner.telemetry.registry, "events_failed_total", error_code="bad_id") == 1


async def test_an_id_with_dot_dot_builds_no_key_and_no_document(settings):
    """An event id outside the allowlist is refused before any S3 key or document exists."""
    await publish(
        settings,
        settings.topic_outbox_events,
        None,
        {"event_id": "../x", "payload": {"object": "input/x.mp4"}},
    )
    runner = bootstrap.Runner(settings)
    async with running(runner):
        dlq = await read_topic(
            settings, settings.dlq_topic(settings.topic_outbox_events), until=lambda r: len(r) >= 1
        )
    assert header(dlq[0], "error_code") == "bad_id"
    store = store_of(settings)
    try:
        assert await store.get("../x") is None
    finally:
        await store.close()
    objects = bootstrap.object_store(settings)
    await objects.ensure_bucket(settings.bucket_frames)
    listing = s3_client(settings).list_objects_v2(Bucket=settings.bucket_frames)
    assert listing.get("KeyCount", 0) == 0


class SlowFrames:
    """Wraps a frame source so that a short video takes longer than max_poll_interval_ms."""

    def __init__(self, inner, delay_s):
        self._inner = inner
        self._delay_s = delay_s

    def probe(self, path):
        return self._inner.probe(path)

    async def extract(self, path, plan=None):
        async for frame in self._inner.extract(path, plan):
            await asyncio.sleep(self._delay_s)
            yield frame


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_a_video_slower_than_max_poll_interval_is_processed_once_without_rebalance(tmp_path):
    """With max_poll_interval_ms=10 s, a 15 s video keeps its partition: no redo, no duplicate."""
    settings = isolated_settings(
        tmp_path / "work", kafka_max_poll_interval_ms=10_000, kafka_session_timeout_ms=10_000
    )
    runner = bootstrap.Runner(
        settings, frames=SlowFrames(bootstrap.frame_source(settings), delay_s=0.6)
    )
    started = time.monotonic()
    async with running(runner):
        event_id = await submit_video(settings, real_video("carphone_pristine.mp4"))  # 24 frames
        await extracted(settings, event_id, timeout_s=120)
        elapsed = time.monotonic() - started
        await asyncio.sleep(3)  # a rebalance would redeliver the event now
    assert elapsed > 10
    records = await read_topic(
        settings, settings.topic_inference_tasks, until=lambda r: len(r) >= 24
    )
    assert frame_ids_of(records, event_id) == list(range(0, 120, 5))
    assert metric(runner.telemetry.registry, "events_received_total") == 1


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_a_runner_killed_mid_video_loses_nothing_once_restarted(tmp_path):
    """SIGKILL during extraction: the restarted runner redoes the event; every task is there."""
    settings = isolated_settings(tmp_path / "work", upload_concurrency=2)
    video = make_video(tmp_path / "long.mp4", frames=1500, width=320, height=240)
    expected = list(range(0, 1500, 5))
    store = store_of(settings)
    try:
        with service_process("serve", settings, tmp_path / "runner-1.log") as first:
            event_id = await submit_video(settings, video)

            async def midway():
                document = await stored_document(store, event_id)
                return document and 0 < (document.get("frames_published") or 0) < len(expected)

            await wait_for(midway, timeout_s=90, every_s=0.05)
            first.kill()
        killed_at = (await stored_document(store, event_id))["frames_published"]
        with service_process("serve", settings, tmp_path / "runner-2.log"):
            document = await extracted(settings, event_id, timeout_s=180)
    finally:
        await store.close()
    assert killed_at < len(expected)
    assert document["total_frames"] == len(expected)
    records = await read_topic(
        settings,
        settings.topic_inference_tasks,
        until=lambda r: set(frame_ids_of(r, event_id)) >= set(expected),
    )
    assert sorted(set(frame_ids_of(records, event_id))) == expected
    committed = await committed_offsets(
        settings, settings.group_runner, settings.topic_outbox_events
    )
    assert sum(committed.values()) == 1  # the one event, committed once after its redo


async def committed_offsets(settings, group, topic):
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_two_runner_processes_share_eight_videos_over_four_partitions(tmp_path):
    """Two replicas in one group: each of eight videos gets all its tasks; none is lost."""
    settings = isolated_settings(tmp_path / "work")
    await create_topic(settings, settings.topic_outbox_events, partitions=4)
    expected = list(range(0, 120, 5))
    with (
        service_process("serve", settings, tmp_path / "a.log"),
        service_process("serve", settings, tmp_path / "b.log", HTTP_PORT=str(free_port())),
    ):
        events = [
            await submit_video(settings, real_video("carphone_pristine.mp4")) for _ in range(8)
        ]
        for event_id in events:
            await extracted(settings, event_id, timeout_s=180)
    records = await read_topic(
        settings,
        settings.topic_inference_tasks,
        until=lambda r: all(set(frame_ids_of(r, e)) >= set(expected) for e in events),
    )
    for event_id in events:
        assert sorted(set(frame_ids_of(records, event_id))) == expected
