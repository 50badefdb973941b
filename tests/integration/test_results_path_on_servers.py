"""The runner's results path against real servers (issue: results path)."""

from __future__ import annotations

import json
import random

import bson
import pytest

from support.objects import frame_ids_of, header, metric, task_values
from support.stack import (
    create_topic,
    isolated_settings,
    publish,
    read_topic,
    running,
    store_of,
    wait_for,
)
from video_runner import bootstrap
from video_runner.adapters.mongo import frame_doc_id
from video_runner.domain.results import FrameResult


def result(event_id, frame_id, objects=None, **extra):
    message = {
        "event_id": event_id,
        "frame_id": frame_id,
        "objects": objects
        if objects is not None
        else [{"class": "person", "box": [1, 2, 30, 40], "conf": 0.9}],
        "model": "test",
    }
    message.update(extra)
    return message


async def prepare_event(store, event_id, frame_ids, *, total_known=True, bucket="frames"):
    """A document as the video path leaves it: processing, frames recorded, tasks published."""
    assert await store.begin(
        event_id,
        {
            "source": {"bucket": "videos", "object": f"input/{event_id}.mp4"},
            "sampling": {"every_n": 5},
        },
    )
    await store.record_frames(
        event_id,
        [
            {
                "frame_id": f,
                "timestamp_ms": f * 40,
                "width": 64,
                "height": 48,
                "bucket": bucket,
                "object": f"frames/{event_id}/{f}.jpg",
            }
            for f in frame_ids
        ],
    )
    if total_known:
        await store.update_processing(
            event_id, {"total_frames": len(frame_ids), "frames_published": len(frame_ids)}
        )


async def status_is(store, event_id, status, timeout_s=60):
    async def check():
        document = await store.get(event_id)
        return document if document and document["status"] == status else None

    return await wait_for(check, timeout_s=timeout_s)


@pytest.fixture
async def store(settings):
    store = store_of(settings)
    await store.ensure_indexes()
    yield store
    await store.close()


async def test_duplicated_and_shuffled_results_make_one_predictable_transition(settings, store):
    """Each result three times, in random order: stored once, counted once, predictable once."""
    frame_ids = list(range(0, 100, 5))
    await prepare_event(store, "dup-1", frame_ids)
    messages = [result("dup-1", f) for f in frame_ids] * 3
    random.Random(7).shuffle(messages)
    runner = bootstrap.Runner(settings)
    async with running(runner):
        for message in messages:
            await publish(settings, settings.topic_inference_results, "dup-1", message)
        document = await status_is(store, "dup-1", "predictable")
        await wait_for(
            lambda: _async(
                metric(runner.telemetry.registry, "results_received_total") >= len(messages)
            )
        )
    assert document["results_received"] == len(frame_ids)
    assert metric(runner.telemetry.registry, "events_predictable_total") == 1
    assert metric(runner.telemetry.registry, "results_duplicate_total") == 2 * len(frame_ids)
    merged = [r.frame_id async for r in store.iter_results("dup-1")]
    assert merged == frame_ids


async def _async(value):
    return value


async def test_results_that_arrive_before_total_frames_count_once_it_is_known(settings, store):
    """Results for an event still being extracted are kept and complete it once the total is set."""
    frame_ids = [0, 5, 10, 15]
    await prepare_event(store, "early-1", frame_ids, total_known=False)
    runner = bootstrap.Runner(settings)
    async with running(runner):
        for f in frame_ids:
            await publish(
                settings, settings.topic_inference_results, "early-1", result("early-1", f, frame=f)
            )

        async def counted():
            return await store.count_results("early-1") == (len(frame_ids), 0)

        await wait_for(counted)
        assert (await store.get("early-1"))["status"] == "processing"
        await store.update_processing("early-1", {"total_frames": len(frame_ids)})
        await status_is(store, "early-1", "predictable")


async def test_an_event_whose_transition_was_lost_is_finished_by_the_reconciler(settings, store):
    """All results stored but the runner died before the check: a restarted runner finishes it."""
    frame_ids = list(range(0, 50, 5))
    await prepare_event(store, "lost-1", frame_ids)
    for f in frame_ids:  # what the dead runner had stored before it could check completion
        assert await store.save_result(
            "lost-1", FrameResult(frame_id=f, timestamp_ms=None, objects=[])
        )
    assert (await store.get("lost-1"))["status"] == "processing"
    async with running(bootstrap.Runner(settings)):
        document = await status_is(store, "lost-1", "predictable")
    assert document["results_received"] == len(frame_ids)


async def test_a_missing_result_is_republished_then_fails_the_event_naming_the_frame(tmp_path):
    """The reaper re-publishes the overdue frame's task, then fails the event with its id."""
    settings = isolated_settings(tmp_path / "work", result_deadline_s=1.0, reaper_max_attempts=2)
    store = store_of(settings)
    await store.ensure_indexes()
    try:
        frame_ids = [0, 5, 10, 15, 20]
        await prepare_event(store, "gap-1", frame_ids)
        runner = bootstrap.Runner(settings)
        async with running(runner):
            for f in frame_ids:
                if f != 10:
                    await publish(
                        settings, settings.topic_inference_results, "gap-1", result("gap-1", f)
                    )
            document = await status_is(store, "gap-1", "failed", timeout_s=60)
        republished = await read_topic(
            settings, settings.topic_inference_tasks, until=lambda r: len(r) >= 2
        )
    finally:
        await store.close()
    assert document["error"]["code"] == "inference_timeout"
    assert document["error"]["missing_frame_ids"] == [10]
    assert frame_ids_of(republished, "gap-1") == [10, 10]
    assert sorted(t["attempt"] for t in task_values(republished)) == [1, 2]
    assert metric(runner.telemetry.registry, "tasks_republished_total") == 2


async def test_results_for_unknown_events_are_kept_for_inspection_and_harm_nothing(settings, store):
    """A result for an event the runner never saw is stored and counted; others still complete."""
    await prepare_event(store, "known-1", [0])
    runner = bootstrap.Runner(settings)
    async with running(runner):
        await publish(settings, settings.topic_inference_results, "ghost-1", result("ghost-1", 0))
        await publish(settings, settings.topic_inference_results, "known-1", result("known-1", 0))
        await status_is(store, "known-1", "predictable")
        await wait_for(
            lambda: _async(metric(runner.telemetry.registry, "results_unknown_event_total") == 1)
        )
    assert await store.get("ghost-1") is None
    kept = await store._frames.find_one({"event_id": "ghost-1", "frame_id": 0})
    assert kept["result"]["objects"][0]["class"] == "person"


async def test_malformed_results_are_dead_lettered_without_blocking_the_partition(tmp_path):
    """Bad JSON and schema violations go to inference_results.dlq; the result behind them counts."""
    settings = isolated_settings(tmp_path / "work")
    await create_topic(settings, settings.topic_inference_results, partitions=1)
    store = store_of(settings)
    await store.ensure_indexes()
    try:
        await prepare_event(store, "ok-1", [0])
        await publish(settings, settings.topic_inference_results, None, b"\xff\xfe not json")
        await publish(
            settings,
            settings.topic_inference_results,
            None,
            json.dumps({"event_id": "ok-1"}).encode(),
        )
        await publish(
            settings,
            settings.topic_inference_results,
            None,
            json.dumps(result("../bad", 0)).encode(),
        )
        await publish(settings, settings.topic_inference_results, "ok-1", result("ok-1", 0))
        async with running(bootstrap.Runner(settings)):
            await status_is(store, "ok-1", "predictable")
            dlq = await read_topic(
                settings,
                settings.dlq_topic(settings.topic_inference_results),
                until=lambda r: len(r) >= 3,
            )
    finally:
        await store.close()
    assert sorted(header(r, "error_code") for r in dlq) == ["bad_id", "bad_json", "schema"]


async def test_a_detector_error_above_the_allowed_ratio_fails_the_event(tmp_path):
    """Frames the detector failed on are kept and counted; above the ratio the event fails."""
    settings = isolated_settings(tmp_path / "work", max_failed_frame_ratio=0.25)
    store = store_of(settings)
    await store.ensure_indexes()
    try:
        await prepare_event(store, "bad-det", [0, 5, 10, 15])
        await prepare_event(store, "ok-det", [0, 5, 10, 15])
        async with running(bootstrap.Runner(settings)):
            for event_id, errors in [("bad-det", {0, 5}), ("ok-det", {0})]:
                for f in [0, 5, 10, 15]:
                    extra = {"error": "detector crashed", "objects": []} if f in errors else {}
                    await publish(
                        settings,
                        settings.topic_inference_results,
                        event_id,
                        result(event_id, f, **extra),
                    )
            failed = await status_is(store, "bad-det", "failed")
            passed = await status_is(store, "ok-det", "predictable")
    finally:
        await store.close()
    assert failed["error"]["code"] == "inference_failed"
    assert failed["failed_frames"] == 2
    assert passed["failed_frames"] == 1


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_a_large_result_set_is_merged_into_s3_while_the_document_stays_small(tmp_path):
    """A thousand frames with 20 objects each end ready: the JSON in S3 is complete and sorted,
    and the prediction document holds a pointer, not the result (so no 16 MB limit applies).

    The full three-hour set (54,000 frames) is rendered in tests/unit/test_results_merge.py:
    FerretDB reads about 7 ms per such document, too slow for that size here; MongoDB is not.
    """
    settings = isolated_settings(tmp_path / "work")
    store = store_of(settings)
    await store.ensure_indexes()
    frame_ids = list(range(0, 1000 * 5, 5))
    objects = [{"class": "person", "box": [10.5, 20.25, 110.0, 220.0], "conf": 0.87}] * 20
    try:
        await store.begin("long-1", {"source": {"bucket": settings.bucket_videos, "object": "x"}})
        await store.update_processing("long-1", {"total_frames": len(frame_ids)})
        shuffled = list(frame_ids)
        random.Random(3).shuffle(shuffled)
        await store._frames.insert_many(
            [
                {
                    "_id": frame_doc_id("long-1", f),
                    "event_id": "long-1",
                    "frame_id": f,
                    "timestamp_ms": f * 40,
                    "bucket": settings.bucket_frames,
                    "object": f"frames/long-1/{f}.jpg",
                    "result": {"objects": objects, "error": None, "model": "m", "failed": False},
                }
                for f in shuffled
            ]
        )
        await bootstrap.object_store(settings).ensure_bucket(settings.bucket_videos)
        async with running(bootstrap.Runner(settings)), running(bootstrap.Outbox(settings)):
            document = await status_is(store, "long-1", "ready", timeout_s=300)
    finally:
        await store.close()
    assert document["results_received"] == len(frame_ids)
    assert len(bson.encode(document)) < 4096
    bucket, key = document["output_s3"].removeprefix("s3://").split("/", 1)
    merged = json.loads(await bootstrap.object_store(settings).get_bytes(bucket, key))
    assert [f["frame_id"] for f in merged["frames"]] == frame_ids
    assert [p["frame"] for p in merged["prediction"]] == frame_ids
    assert all(len(f["objects"]) == 20 for f in merged["frames"])
    assert merged["frames"][1]["timestamp_ms"] == 200
