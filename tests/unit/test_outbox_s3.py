"""The outbox-S3 worker: predictable events get their JSON in S3, then become ready, once."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

from fakes import FakeObjectStore, FakePredictionStore, RecordingTelemetry

from video_runner.domain.results import FrameResult, merged_document, merged_header
from video_runner.domain.status import Status
from video_runner.services.outbox_s3 import OutboxConfig, OutboxS3

OBJECT = {"class": "person", "box": [1.0, 2.0, 3.0, 4.0], "conf": 0.75}


async def _predictable(store: FakePredictionStore, event_id: str = "ev-1", *, bucket="videos"):
    """A predictable event with three results stored out of order, one of them an error."""
    source = {"object": f"input/{event_id}.mp4", "media_type": "video"}
    if bucket is not None:
        source["bucket"] = bucket
    document = store.put(
        event_id,
        Status.PREDICTABLE,
        source=source,
        video={"width": 64, "height": 48, "fps": 25.0},
        sampling={"every_n": 5},
        preprocessing={"blur_ksize": 3, "alpha": 1.3, "beta": 5.0, "jpeg_quality": 95},
        total_frames=3,
        failed_frames=1,
    )
    await store.record_frames(
        event_id,
        [
            {"frame_id": i, "timestamp_ms": i * 40, "bucket": "frames", "object": f"f/{i}.jpg"}
            for i in (0, 5, 10)
        ],
    )
    await store.save_result(event_id, FrameResult(frame_id=10, timestamp_ms=400, objects=[OBJECT]))
    await store.save_result(event_id, FrameResult(frame_id=0, timestamp_ms=0, error="bad_image"))
    await store.save_result(event_id, FrameResult(frame_id=5, timestamp_ms=200, objects=[]))
    return document


def _worker(store, objects, tmp_path, owner: str = "w1") -> OutboxS3:
    return OutboxS3(
        OutboxConfig(owner=owner, default_bucket="default-videos", work_dir=tmp_path),
        store=store,
        objects=objects,
        telemetry=RecordingTelemetry(),
    )


async def test_a_predictable_event_gets_its_json_in_the_source_bucket_and_becomes_ready(
    tmp_path,
):
    """detection/{event_id}.json equals merged_document; the document is ready with output_s3."""
    store, objects = FakePredictionStore(), FakeObjectStore()
    document = await _predictable(store)
    assert await _worker(store, objects, tmp_path).run_once() == "ev-1"

    written = objects.objects["videos", "detection/ev-1.json"]
    assert objects.content_types["videos", "detection/ev-1.json"] == "application/json"
    stored = [r async for r in store.iter_results("ev-1")]
    assert json.loads(written) == merged_document(merged_header(document), stored)
    parsed = json.loads(written)
    assert [f["frame_id"] for f in parsed["frames"]] == [0, 5, 10]
    assert parsed["frames"][0]["error"] == "bad_image"
    assert parsed["frames"][0]["timestamp_ms"] == 0

    after = await store.get("ev-1")
    assert after is not None
    assert after["status"] == Status.READY
    assert after["output_s3"] == "s3://videos/detection/ev-1.json"
    assert after["lease_until"] is None
    assert isinstance(after["ready_at"], datetime)
    assert list(tmp_path.iterdir()) == []


async def test_without_a_source_bucket_the_default_bucket_is_used(tmp_path):
    """An event whose source names no bucket is written to the configured default."""
    store, objects = FakePredictionStore(), FakeObjectStore()
    await _predictable(store, bucket=None)
    await _worker(store, objects, tmp_path).run_once()
    assert ("default-videos", "detection/ev-1.json") in objects.objects
    after = await store.get("ev-1")
    assert after is not None
    assert after["output_s3"] == "s3://default-videos/detection/ev-1.json"


async def test_nothing_to_do_returns_none(tmp_path):
    """No predictable event: nothing written, None returned."""
    store, objects = FakePredictionStore(), FakeObjectStore()
    store.put("ev-1", Status.PROCESSING)
    store.put("ev-2", Status.READY)
    assert await _worker(store, objects, tmp_path).run_once() is None
    assert objects.objects == {}


async def test_two_workers_at_once_make_exactly_one_ready_transition(tmp_path):
    """Racing replicas: one takes the lease and finishes; the other finds nothing."""
    store, objects = FakePredictionStore(), FakeObjectStore()
    await _predictable(store)
    one = _worker(store, objects, tmp_path, "w1")
    two = _worker(store, objects, tmp_path, "w2")
    done = await asyncio.gather(one.run_once(), two.run_once())
    assert done.count("ev-1") == 1
    assert done.count(None) == 1
    assert len(store.moved_to(Status.READY)) == 1
    after = await store.get("ev-1")
    assert after is not None
    assert after["status"] == Status.READY


async def test_two_workers_share_several_events_without_doing_any_twice(tmp_path):
    """Each of five events is finished by exactly one of two replicas."""
    store, objects = FakePredictionStore(), FakeObjectStore()
    for i in range(5):
        await _predictable(store, f"ev-{i}")
    workers = [_worker(store, objects, tmp_path, f"w{n}") for n in (1, 2)]
    finished: list[str] = []
    while True:
        done = await asyncio.gather(*(w.run_once() for w in workers))
        if done == [None, None]:
            break
        finished.extend(d for d in done if d is not None)
    assert sorted(finished) == [f"ev-{i}" for i in range(5)]
    assert len(store.moved_to(Status.READY)) == 5


async def test_a_lease_held_by_another_owner_is_not_taken_until_it_expires(tmp_path):
    """w1 holds the lease: w2 finds nothing; once expired, w2 finishes and w1 can no longer."""
    store, objects = FakePredictionStore(), FakeObjectStore()
    await _predictable(store)
    now = datetime.now(UTC)
    assert await store.lease(Status.PREDICTABLE, "w1", now + timedelta(seconds=120), now)
    second = _worker(store, objects, tmp_path, "w2")
    assert await second.run_once() is None
    assert objects.objects == {}

    # Time passes: w1 died, and the 120 s of its lease are over.
    store.documents["ev-1"]["lease_until"] = now - timedelta(seconds=1)
    assert await second.run_once() == "ev-1"
    after = await store.get("ev-1")
    assert after is not None
    assert after["status"] == Status.READY
    assert after["lease_owner"] == "w2"
    assert not await store.transition("ev-1", Status.READY, {}, owner="w1")


class _SlowUpload(FakeObjectStore):
    """An object store whose first upload runs ``meanwhile`` first (a writer that stalls)."""

    def __init__(self) -> None:
        super().__init__()
        self.meanwhile = None

    async def upload_file(self, bucket, key, path, content_type) -> None:
        meanwhile, self.meanwhile = self.meanwhile, None
        if meanwhile is not None:
            await meanwhile()
        await super().upload_file(bucket, key, path, content_type)


async def test_a_worker_whose_lease_expired_mid_write_does_not_mark_the_event_ready(tmp_path):
    """w1 stalls past its lease, w2 takes over and finishes: only w2's move to ready counts."""
    store, objects = FakePredictionStore(), _SlowUpload()
    await _predictable(store)
    first = _worker(store, objects, tmp_path, "w1")
    second = _worker(store, objects, tmp_path, "w2")

    async def stall_past_the_lease() -> None:
        store.documents["ev-1"]["lease_until"] = datetime.now(UTC) - timedelta(seconds=1)
        assert await second.run_once() == "ev-1"

    objects.meanwhile = stall_past_the_lease
    assert await first.run_once() == "ev-1"
    assert [t.owner for t in store.moved_to(Status.READY)] == ["w2"]
    assert [t.owner for t in store.transitions if not t.moved] == ["w1"]
    after = await store.get("ev-1")
    assert after is not None
    assert after["status"] == Status.READY
    assert after["lease_owner"] == "w2"
