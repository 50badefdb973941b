"""The runner's results path against real servers: exactly once over partitions and replicas."""

from __future__ import annotations

import asyncio
import json
import random

import bson
import pytest

from support.documents import stored_document
from support.events import consume_all_tasks, prepare_event, publish_results, result
from support.objects import header, metric
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
from video_runner.domain.results import FrameResult
from video_runner.services.merged_output import write_merged


async def status_is(store, event_id, status, timeout_s=60):
    async def check():
        document = await stored_document(store, event_id)
        return document if document and document["status"] == status else None

    return await wait_for(check, timeout_s=timeout_s)


@pytest.fixture
async def store(settings):
    store = store_of(settings)
    await store.ensure_indexes()
    yield store
    await store.close()


async def test_duplicated_shuffled_results_over_partitions_make_one_predictable_transition(
    settings, store
):
    """Each result three times, shuffled, keyed by frame over every partition: stored once,
    counted once, predictable once, announced once."""
    frame_ids = list(range(0, 500, 5))
    await prepare_event(settings, store, "dup-1", frame_ids)
    messages = [result("dup-1", f) for f in frame_ids] * 3
    random.Random(7).shuffle(messages)
    runner = bootstrap.Runner(settings)
    async with running(runner):
        await publish_results(settings, messages)
        document = await status_is(store, "dup-1", "predictable")
        await wait_for(
            lambda: _async(
                metric(runner.telemetry.registry, "results_received_total") >= len(messages)
            )
        )
    notices = await read_topic(
        settings, settings.topic_predictable_events, until=lambda r: len(r) >= 1, timeout_s=10
    )
    assert document["results_received"] == len(frame_ids)
    assert (await store.recount("dup-1")).stored == len(frame_ids)
    assert metric(runner.telemetry.registry, "events_predictable_total") == 1
    assert metric(runner.telemetry.registry, "results_duplicate_total") == 2 * len(frame_ids)
    assert [json.loads(n.value)["event_id"] for n in notices] == ["dup-1"]
    assert {r.partition for r in await _results_on_topic(settings, len(messages))} == {0, 1, 2, 3}


async def _results_on_topic(settings, count):
    return await read_topic(
        settings, settings.topic_inference_results, until=lambda r: len(r) >= count
    )


async def _async(value):
    return value


async def test_two_runner_replicas_storing_one_event_at_once_stay_exactly_once(settings, store):
    """Two runners in one results group each own some partitions of one event's results (sent
    twice): both store some, the event moves to predictable exactly once, with every frame
    stored once."""
    frame_ids = list(range(0, 2000, 5))
    await prepare_event(settings, store, "two-1", frame_ids)
    first, second = bootstrap.Runner(settings), bootstrap.Runner(settings)
    async with running(first), running(second):

        async def both_assigned():
            return first.results_loop.stats.assigned and second.results_loop.stats.assigned

        await wait_for(both_assigned, timeout_s=60)
        await publish_results(settings, [result("two-1", f) for f in frame_ids] * 2)
        document = await status_is(store, "two-1", "predictable")
    received = [metric(r.telemetry.registry, "results_received_total") for r in (first, second)]
    predictable = sum(
        metric(r.telemetry.registry, "events_predictable_total") for r in (first, second)
    )
    assert all(count > 0 for count in received), received
    assert predictable == 1
    assert document["results_received"] == len(frame_ids)
    assert (await store.recount("two-1")).stored == len(frame_ids)


async def test_results_that_arrive_before_total_frames_count_once_it_is_known(settings, store):
    """Results for an event still being extracted count, and complete it once the total is set
    and the video path checks."""
    frame_ids = [0, 5, 10, 15]
    await prepare_event(settings, store, "early-1", frame_ids, total_known=False)
    runner = bootstrap.Runner(settings)
    async with running(runner):
        await publish_results(settings, [result("early-1", f) for f in frame_ids])

        async def counted():
            return (await store.progress("early-1", 4)).stored == len(frame_ids)

        await wait_for(counted)
        assert (await stored_document(store, "early-1"))["status"] == "processing"
        await store.update_processing("early-1", {"total_frames": len(frame_ids)})
        await runner.completion.check("early-1")
        await status_is(store, "early-1", "predictable")


async def test_results_stored_but_never_counted_are_recounted_by_the_reconciler(tmp_path):
    """All results stored but the runner died before counting them: a restarted runner's
    reconciler recounts the quiet event and finishes it."""
    settings = isolated_settings(tmp_path / "work", recount_after_s=1.0)
    store = store_of(settings)
    await store.ensure_indexes()
    try:
        frame_ids = list(range(0, 50, 5))
        await prepare_event(settings, store, "lost-1", frame_ids)
        stored = await store.save_results(
            [("lost-1", FrameResult(frame_id=f, timestamp_ms=None)) for f in frame_ids]
        )
        assert all(stored)
        async with running(bootstrap.Runner(settings)):
            document = await status_is(store, "lost-1", "predictable")
    finally:
        await store.close()
    assert document["results_received"] == len(frame_ids)


async def test_a_consumed_task_without_a_result_is_republished_then_fails_the_event(tmp_path):
    """A task the inference group consumed but never answered is re-published (attempt 1, 2),
    then the event fails with inference_timeout naming the frame."""
    settings = isolated_settings(
        tmp_path / "work", result_deadline_s=1.0, reaper_max_attempts=2, reaper_interval_s=0.5
    )
    store = store_of(settings)
    await store.ensure_indexes()
    frame_ids = [0, 5, 10, 15, 20]
    try:
        await prepare_event(settings, store, "gap-1", frame_ids)
        runner = bootstrap.Runner(settings)
        async with running(runner):
            await publish_results(settings, [result("gap-1", f) for f in frame_ids if f != 10])

            async def failed():
                await consume_all_tasks(settings)  # workers take every task, lose frame 10's
                document = await stored_document(store, "gap-1")
                return document if document["status"] == "failed" else None

            with_error = await wait_for(failed, timeout_s=60, every_s=0.5)
        tasks = await read_topic(
            settings, settings.topic_inference_tasks, until=lambda r: len(r) >= 7
        )
    finally:
        await store.close()
    assert with_error["error"]["code"] == "inference_timeout"
    assert with_error["error"]["missing_frame_ids"] == [10]
    again = [json.loads(t.value) for t in tasks if json.loads(t.value).get("attempt")]
    assert sorted((t["frame_id"], t["attempt"]) for t in again) == [(10, 1), (10, 2)]
    assert metric(runner.telemetry.registry, "tasks_republished_total") == 2


async def test_queued_tasks_are_never_republished_or_failed_for_waiting(tmp_path):
    """Tasks nobody consumed yet (no inference worker runs) are a backlog: well past the
    deadline nothing is re-published and the event is still processing."""
    settings = isolated_settings(
        tmp_path / "work", result_deadline_s=0.5, reaper_max_attempts=1, reaper_interval_s=0.3
    )
    store = store_of(settings)
    await store.ensure_indexes()
    try:
        await prepare_event(settings, store, "queued-1", list(range(0, 100, 5)))
        runner = bootstrap.Runner(settings)
        async with running(runner):
            await asyncio.sleep(4)
            document = await stored_document(store, "queued-1")
    finally:
        await store.close()
    assert document["status"] == "processing"
    assert metric(runner.telemetry.registry, "tasks_republished_total") == 0


async def test_results_of_unknown_events_are_not_stored_and_harm_nothing(settings, store):
    """A result for an event the runner never saw is counted as unknown and dropped; the
    known event beside it still completes."""
    await prepare_event(settings, store, "known-1", [0])
    runner = bootstrap.Runner(settings)
    async with running(runner):
        await publish_results(settings, [result("ghost-1", 0), result("known-1", 0)])
        await status_is(store, "known-1", "predictable")
        await wait_for(
            lambda: _async(metric(runner.telemetry.registry, "results_unknown_event_total") == 1)
        )
    assert await store.get("ghost-1") is None
    assert (await store.recount("ghost-1")).stored == 0


async def test_malformed_results_are_dead_lettered_without_blocking_the_partition(tmp_path):
    """Bad JSON, NaN and schema violations go to inference_results.dlq; the result behind them
    on the same partition counts."""
    settings = isolated_settings(tmp_path / "work")
    await create_topic(settings, settings.topic_inference_results, partitions=1)
    store = store_of(settings)
    await store.ensure_indexes()
    try:
        await prepare_event(settings, store, "ok-1", [0])
        topic = settings.topic_inference_results
        await publish(settings, topic, None, b"\xff\xfe not json")
        await publish(settings, topic, None, b'{"event_id": "ok-1", "frame_id": NaN}')
        await publish(settings, topic, None, json.dumps({"event_id": "ok-1"}).encode())
        await publish(settings, topic, None, json.dumps(result("../bad", 0)).encode())
        await publish(settings, topic, "ok-1/0", result("ok-1", 0))
        async with running(bootstrap.Runner(settings)):
            await status_is(store, "ok-1", "predictable")
            dlq = await read_topic(settings, settings.dlq_topic(topic), until=lambda r: len(r) >= 4)
    finally:
        await store.close()
    codes = sorted(header(r, "error_code") for r in dlq)
    assert codes == ["bad_id", "bad_json", "bad_json", "schema"]


async def test_a_detector_error_above_the_allowed_ratio_fails_the_event(tmp_path):
    """Frames the detector failed on are counted; above the ratio the event fails."""
    settings = isolated_settings(tmp_path / "work", max_failed_frame_ratio=0.25)
    store = store_of(settings)
    await store.ensure_indexes()
    try:
        await prepare_event(settings, store, "bad-det", [0, 5, 10, 15])
        await prepare_event(settings, store, "ok-det", [0, 5, 10, 15])
        async with running(bootstrap.Runner(settings)):
            messages = []
            for event_id, errors in [("bad-det", {0, 5}), ("ok-det", {0})]:
                for f in [0, 5, 10, 15]:
                    extra = {"error": "detector crashed", "objects": []} if f in errors else {}
                    messages.append(result(event_id, f, **extra))
            await publish_results(settings, messages)
            failed = await status_is(store, "bad-det", "failed")
            passed = await status_is(store, "ok-det", "predictable")
    finally:
        await store.close()
    assert failed["error"]["code"] == "inference_failed"
    assert failed["failed_frames"] == 2
    assert passed["failed_frames"] == 1


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_a_large_result_set_is_merged_into_s3_and_then_purged_from_the_store(tmp_path):
    """A thousand frames with 20 objects each end ready: the JSON in S3 is complete and sorted,
    the prediction document stays small, and the per-frame documents are deleted after."""
    settings = isolated_settings(tmp_path / "work")
    store = store_of(settings)
    await store.ensure_indexes()
    frame_ids = list(range(0, 1000 * 5, 5))
    objects = [{"class": "person", "box": [10.5, 20.25, 110.0, 220.0], "conf": 0.87}] * 20
    try:
        await prepare_event(settings, store, "long-1", frame_ids)
        await bootstrap.object_store(settings).ensure_bucket(settings.bucket_videos)
        shuffled = list(frame_ids)
        random.Random(3).shuffle(shuffled)
        async with running(bootstrap.Runner(settings)), running(bootstrap.Outbox(settings)):
            await publish_results(settings, [result("long-1", f, objects) for f in shuffled])
            document = await status_is(store, "long-1", "ready", timeout_s=240)

            async def purged():
                return (await stored_document(store, "long-1")).get("purged_at")

            await wait_for(purged, timeout_s=60)
        left = await store.recount("long-1")
    finally:
        await store.close()
    assert document["results_received"] == len(frame_ids)
    assert len(bson.encode(document)) < 4096
    assert left.stored == 0
    bucket, key = document["output_s3"].removeprefix("s3://").split("/", 1)
    merged = json.loads(await bootstrap.object_store(settings).get_bytes(bucket, key))
    assert [f["frame_id"] for f in merged["frames"]] == frame_ids
    assert [p["frame"] for p in merged["prediction"]] == frame_ids
    assert all(len(f["objects"]) == 20 for f in merged["frames"])
    assert merged["frames"][1]["timestamp_ms"] == 200


async def test_a_runner_with_a_static_member_id_consumes_and_rejoins_after_a_restart(tmp_path):
    """With KAFKA_GROUP_INSTANCE_ID the runner joins its groups as a static member: it completes
    an event, and a runner restarted under the same id completes the next one."""
    settings = isolated_settings(tmp_path / "work", kafka_group_instance_id="runner-static-0")
    store = store_of(settings)
    await store.ensure_indexes()
    try:
        for event_id in ("static-1", "static-2"):
            await prepare_event(settings, store, event_id, [0, 5, 10])
            async with running(bootstrap.Runner(settings)):
                await publish_results(settings, [result(event_id, f) for f in (0, 5, 10)])
                await status_is(store, event_id, "predictable")
    finally:
        await store.close()


@pytest.mark.timeout(300)
async def test_a_merge_started_at_published_writes_what_a_whole_merge_writes(tmp_path):
    """The runner's published notice starts the outbox-S3 worker's merge while half the results
    are still to come (one frame failed among them); at predictable the final JSON in S3 is,
    byte for byte, what a whole merge of the stored results writes."""
    settings = isolated_settings(
        tmp_path / "work", keep_frame_documents=True, outbox_merge_poll_s=0.2
    )
    store = store_of(settings)
    await store.ensure_indexes()
    frame_ids = list(range(0, 300 * 5, 5))  # five task pages
    messages = [
        result("early-1", f, error="bad_image") if f == 905 else result("early-1", f)
        for f in frame_ids
    ]
    try:
        await prepare_event(settings, store, "early-1", frame_ids, published_notice=True)
        await bootstrap.object_store(settings).ensure_bucket(settings.bucket_videos)
        outbox = bootstrap.Outbox(settings)
        async with running(bootstrap.Runner(settings)), running(outbox):
            await publish_results(settings, messages[:150])
            await wait_for(lambda: _async(len(outbox.outbox.early) == 1), timeout_s=30)
            await asyncio.sleep(1.0)  # it writes the first pages and waits on the third
            await publish_results(settings, messages[150:])
            document = await status_is(store, "early-1", "ready", timeout_s=120)
            assert len(outbox.outbox.early) == 0
        prediction = await store.get("early-1")
        assert prediction is not None
        bucket, key = document["output_s3"].removeprefix("s3://").split("/", 1)
        written = await bootstrap.object_store(settings).get_bytes(bucket, key)
        # The whole merge of the same stored results, from the document as it was at
        # predictable (ready adds fields the header does not read).
        whole = tmp_path / "whole.json"
        await write_merged(store, prediction, whole)
    finally:
        await store.close()
    assert written == whole.read_bytes()
    merged = json.loads(written)
    assert [f["frame_id"] for f in merged["frames"]] == frame_ids
    assert merged["failed_frames"] == 1
    assert merged["frames"][181]["error"] == "bad_image"
