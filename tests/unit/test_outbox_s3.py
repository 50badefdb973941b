"""The outbox-S3 worker: predictable events get their JSON in S3, then become ready, once."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime

from support.fakes import FakeClock, FakeMessage, FakeObjectStore, FakePredictionStore
from support.worlds import outbox_worker, seed_predictable
from video_runner.domain.results import merged_document, merged_header
from video_runner.domain.status import Status
from video_runner.domain.task_pages import TASKS_PER_PAGE
from video_runner.services.outbox_s3 import OutboxS3


def _worker(store, objects, tmp_path, **settings) -> OutboxS3:
    """An outbox-S3 worker whose default bucket (``BUCKET_VIDEOS``) is not the events' own."""
    return outbox_worker(
        store, objects, tmp_path, **{"bucket_videos": "default-videos", **settings}
    )


def _notice(event_id: str) -> FakeMessage:
    value = json.dumps({"event_id": event_id, "status": "predictable"}).encode()
    return FakeMessage(topic="predictable_events", key=event_id.encode(), value=value)


async def test_a_notice_gets_the_json_into_the_source_bucket_and_makes_the_event_ready(tmp_path):
    """detection/{event_id}.json equals merged_document of the stored results, sorted by
    frame_id, with the task's timestamps; the document is ready with output_s3."""
    store, objects = FakePredictionStore(), FakeObjectStore()
    document = await seed_predictable(store)
    await _worker(store, objects, tmp_path, keep_frame_documents=True).handle(_notice("ev-1"))

    written = objects.objects["videos", "detection/ev-1.json"]
    assert objects.content_types["videos", "detection/ev-1.json"] == "application/json"
    expected = merged_document(merged_header(document), store.stored_results("ev-1"))
    assert json.loads(written) == expected
    parsed = json.loads(written)
    assert [f["frame_id"] for f in parsed["frames"]] == [0, 5, 10]
    assert [p["frame"] for p in parsed["prediction"]] == [0, 5, 10]
    assert parsed["frames"][0]["error"] == "bad_image"
    assert parsed["frames"][1]["timestamp_ms"] == 200
    assert parsed["models"] == ["yolov4-tiny@abc.c1"]

    after = store.document("ev-1")
    assert after["status"] == Status.READY
    assert after["output_s3"] == "s3://videos/detection/ev-1.json"
    assert after["models"] == ["yolov4-tiny@abc.c1"]
    assert isinstance(after["ready_at"], datetime)
    assert list(tmp_path.iterdir()) == []


async def test_a_video_of_many_chunks_is_merged_in_frame_order(tmp_path):
    """Frames spread over several task pages come out in one sorted list, each exactly once."""
    store, objects = FakePredictionStore(), FakeObjectStore()
    frames = TASKS_PER_PAGE * 3 + 7
    await seed_predictable(store, frames=frames)
    assert await _worker(store, objects, tmp_path).finish("ev-1")
    parsed = json.loads(objects.objects["videos", "detection/ev-1.json"])
    assert [f["frame_id"] for f in parsed["frames"]] == [o * 5 for o in range(frames)]


async def test_without_a_source_bucket_the_default_bucket_is_used(tmp_path):
    """An event whose source names no bucket is written to the configured default."""
    store, objects = FakePredictionStore(), FakeObjectStore()
    await seed_predictable(store, bucket=None)
    await _worker(store, objects, tmp_path).finish("ev-1")
    assert ("default-videos", "detection/ev-1.json") in objects.objects
    after = store.document("ev-1")
    assert after["output_s3"] == "s3://default-videos/detection/ev-1.json"


async def test_a_duplicate_notice_or_one_for_an_event_not_predictable_writes_nothing(tmp_path):
    """A second notice of a ready event, a notice of a processing event and a malformed notice
    change nothing."""
    store, objects = FakePredictionStore(), FakeObjectStore()
    await seed_predictable(store)
    store.put("ev-2", Status.PROCESSING)
    worker = _worker(store, objects, tmp_path)
    await worker.handle(_notice("ev-1"))
    written = dict(objects.objects)
    await worker.handle(_notice("ev-1"))
    await worker.handle(_notice("ev-2"))
    await worker.handle(FakeMessage(topic="predictable_events", value=b"{not json"))
    assert objects.objects == written
    assert len(store.moved_to(Status.READY)) == 1
    assert (await store.get("ev-2")).status == Status.PROCESSING


async def test_two_workers_on_one_event_at_once_make_exactly_one_ready_transition(tmp_path):
    """Racing replicas may both write the same bytes; one of them makes the move to ready."""
    store, objects = FakePredictionStore(), FakeObjectStore()
    await seed_predictable(store)
    first, second = _worker(store, objects, tmp_path), _worker(store, objects, tmp_path)
    moved = await asyncio.gather(first.finish("ev-1"), second.finish("ev-1"))
    assert sorted(moved) == [False, True]
    assert len(store.moved_to(Status.READY)) == 1
    assert (await store.get("ev-1")).status == Status.READY


async def test_after_ready_the_per_frame_documents_are_deleted_unless_kept(tmp_path):
    """Retention: once the JSON is in S3, results, pages and counters of the event go; the
    event document stays (marked purged). KEEP_FRAME_DOCUMENTS keeps everything."""
    store, objects = FakePredictionStore(), FakeObjectStore()
    await seed_predictable(store, "ev-1")
    await seed_predictable(store, "ev-keep")
    await _worker(store, objects, tmp_path).finish("ev-1")
    await _worker(store, objects, tmp_path, keep_frame_documents=True).finish("ev-keep")
    assert store.stored_results("ev-1") == []
    assert [k for k in store.task_pages if k[0] == "ev-1"] == []
    assert [k for k in store.counters if k[0] == "ev-1"] == []
    assert (await store.get("ev-1")).purged_at is not None
    assert len(store.stored_results("ev-keep")) == 3


async def test_the_sweep_writes_a_predictable_event_whose_notice_never_came(tmp_path):
    """A predictable event older than the grace period is finished by the sweep; a fresh one
    is left to its notice."""
    clock = FakeClock()
    store, objects = FakePredictionStore(clock=clock), FakeObjectStore()
    await seed_predictable(store, "ev-old")
    clock.advance(60)
    await seed_predictable(store, "ev-new")
    worker = _worker(store, objects, tmp_path, notice_grace_s=30.0)
    assert await worker.sweep(now=clock.now) == 1
    assert (await store.get("ev-old")).status == Status.READY
    assert (await store.get("ev-new")).status == Status.PREDICTABLE


async def test_failed_events_are_purged_after_their_retention_only(tmp_path):
    """A failed event keeps its documents for diagnosis until FAILED_RETENTION_S has passed."""
    clock = FakeClock()
    store, objects = FakePredictionStore(clock=clock), FakeObjectStore()
    await seed_predictable(store, "ev-failed")
    store.documents["ev-failed"]["status"] = Status.FAILED.value
    worker = _worker(store, objects, tmp_path, failed_retention_s=3600.0)
    await worker.sweep(now=clock.advance(60))
    assert len(store.stored_results("ev-failed")) == 3
    await worker.sweep(now=clock.advance(3600))
    assert store.stored_results("ev-failed") == []


async def test_the_sweep_purges_a_ready_event_whose_purge_was_interrupted(tmp_path):
    """A worker that died between ready and the purge leaves per-frame documents; the sweep
    deletes them once the event is past the grace period, and leaves purged events alone."""
    clock = FakeClock()
    store, objects = FakePredictionStore(clock=clock), FakeObjectStore()
    await seed_predictable(store, "ev-1")
    await _worker(store, objects, tmp_path, keep_frame_documents=True).finish("ev-1")
    assert len(store.stored_results("ev-1")) == 3
    worker = _worker(store, objects, tmp_path, notice_grace_s=30.0)
    await worker.sweep(now=clock.now)
    assert len(store.stored_results("ev-1")) == 3  # too fresh: its own worker may still purge
    await worker.sweep(now=clock.advance(60))
    assert store.stored_results("ev-1") == []
    purged_at = (await store.get("ev-1")).purged_at
    await worker.sweep(now=clock.advance(60))
    assert (await store.get("ev-1")).purged_at == purged_at
