"""The video path with in-memory ports: one outbox event in, one task per frame out."""

from __future__ import annotations

import asyncio

import pytest

from support.worlds import VIDEO, VideoWorld, extracted_frames, outbox_event, outbox_message
from video_runner.domain.status import Status
from video_runner.domain.task_pages import TASKS_PER_PAGE, TaskPageAssembler, TaskRecord
from video_runner.errors import ErrorCode, InvalidVideo, RetriableError

TOPIC = "outbox_events"


async def test_an_event_publishes_one_task_per_frame_keyed_by_the_frame(tmp_path):
    """Each sampled frame becomes one inference task carrying the contract's fields, keyed
    ``{event_id}/{frame_id}`` so that one video spreads over every partition."""
    world = VideoWorld(tmp_path, extracted_frames(3))
    await world.path.handle(outbox_event())
    tasks = world.tasks()
    assert sorted(t.value["frame_id"] for t in tasks) == [0, 5, 10]
    assert sorted(t.key for t in tasks) == ["ev-1/0", "ev-1/10", "ev-1/5"]
    first = next(t.value for t in tasks if t.value["frame_id"] == 5)
    assert first == {
        "event_id": "ev-1",
        "frame_id": 5,
        "bucket": "frames",
        "object": "frames/ev-1/5.jpg",
        "timestamp_ms": 200,
        "width": 64,
        "height": 48,
        "attempt": 0,
    }
    assert world.dead_letters() == []


async def test_each_frame_jpeg_is_uploaded_under_frames_event_id_frame_id(tmp_path):
    """The JPEG bytes land at frames/{event_id}/{frame_id}.jpg in the frames bucket."""
    world = VideoWorld(tmp_path, extracted_frames(3))
    await world.path.handle(outbox_event())
    for i, frame_id in enumerate((0, 5, 10)):
        key = ("frames", f"frames/ev-1/{frame_id}.jpg")
        assert world.objects.objects[key] == b"jpeg-%d" % i
        assert world.objects.content_types[key] == "image/jpeg"


async def test_the_video_is_downloaded_before_it_is_probed_and_then_removed(tmp_path):
    """The frame source reads the downloaded bytes; the local copy is deleted afterwards."""
    world = VideoWorld(tmp_path, extracted_frames(1))
    await world.path.handle(outbox_event())
    assert world.objects.downloads == [("videos", "input/ev-1.mp4")]
    assert [data for _, data in world.source.probed] == [VIDEO]
    assert list(world.work_dir.iterdir()) == []


async def test_the_document_records_task_pages_totals_and_the_video(tmp_path):
    """Every task is recorded with where Kafka stored it, total_frames and the number of
    results partitions are set, and the extraction is announced."""
    world = VideoWorld(tmp_path, extracted_frames(4))
    await world.path.handle(outbox_event())
    document = world.store.document("ev-1")
    assert document is not None
    assert document["status"] == Status.PROCESSING
    assert document["total_frames"] == 4
    assert document["frames_published"] == 4
    assert document["video"] == world.source.info.as_dict()
    assert document["source"] == {
        "bucket": "videos",
        "object": "input/ev-1.mp4",
        "media_type": "video",
        "size_bytes": len(VIDEO),
    }
    assert document["sampling"] == {"every_n": 5}
    assert document["error"] is None
    assert document["results_partitions"] == world.publisher.partition_count
    page = await world.store.read_task_page("ev-1", 0)
    assert page is not None
    assert page.bucket == "frames"
    assert page.frame_ids() == [0, 5, 10, 15]
    assert page.tasks[1].object_key == "frames/ev-1/5.jpg"
    sent = {s.key: s for s in world.tasks()}
    assert len(sent) == 4
    # Each record names the partition and offset its task was acknowledged at.
    offsets = sorted((t.partition, t.offset) for t in page.tasks)
    assert len(set(offsets)) == 4
    assert document["extracted_at"] is not None
    assert world.extractions() == 1
    assert world.telemetry.total("frames_published") == 4


@pytest.mark.parametrize("status", [Status.PREDICTABLE, Status.READY, Status.FAILED])
async def test_a_duplicate_of_a_finished_event_does_nothing(tmp_path, status):
    """A redelivered event whose document is finished: no download, no task, no change."""
    world = VideoWorld(tmp_path, extracted_frames(2))
    before = world.store.put("ev-1", status, total_frames=2)
    await world.path.handle(outbox_event())
    assert world.objects.downloads == []
    assert world.publisher.sent == []
    assert world.store.document("ev-1") == before
    assert world.telemetry.total("events_duplicate") == 1


async def test_a_duplicate_of_an_event_whose_tasks_were_all_published_does_nothing(tmp_path):
    """processing with total_frames set means only the commit was lost: nothing is redone."""
    world = VideoWorld(tmp_path, extracted_frames(2))
    before = world.store.put("ev-1", Status.PROCESSING, total_frames=2)
    await world.path.handle(outbox_event())
    assert world.objects.downloads == []
    assert world.publisher.sent == []
    assert world.store.document("ev-1") == before


async def test_an_event_interrupted_before_its_total_is_redone(tmp_path):
    """processing without total_frames (a crash mid-extraction) is extracted again."""
    world = VideoWorld(tmp_path, extracted_frames(2))
    world.store.put("ev-1", Status.PROCESSING, frames_published=1)
    await world.path.handle(outbox_event())
    document = world.store.document("ev-1")
    assert document is not None
    assert document["total_frames"] == 2
    assert len(world.tasks()) == 2


async def test_a_copy_waiting_on_a_cancelled_extraction_in_its_process_does_the_work(tmp_path):
    """A revocation cancels an extraction mid-video and the partition comes back with the same
    offset: the new copy was waiting on the cancelled one, and extracts the video itself
    instead of taking it for a duplicate (the cancelled copy is never retried or committed)."""
    world = VideoWorld(tmp_path, extracted_frames(6), hold_after=3)
    first = asyncio.create_task(world.path.handle(outbox_event()))
    await world.source.held.wait()
    second = asyncio.create_task(world.path.handle(outbox_event()))
    for _ in range(20):  # the second copy reaches its wait on the first
        await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    world.source.release.set()
    await second
    document = world.store.document("ev-1")
    assert document is not None
    assert document["status"] == Status.PROCESSING
    assert document["total_frames"] == 6
    assert {t.value["frame_id"] for t in world.tasks()} == {0, 5, 10, 15, 20, 25}
    assert world.extractions() == 1
    assert world.telemetry.total("events_duplicate") == 0


async def test_a_copy_waiting_on_a_finished_extraction_in_its_process_is_a_duplicate(tmp_path):
    """Two copies of one event at once in one process: one extracts, the other waits for it
    and does nothing more."""
    world = VideoWorld(tmp_path, extracted_frames(4), hold_after=2)
    first = asyncio.create_task(world.path.handle(outbox_event()))
    await world.source.held.wait()
    second = asyncio.create_task(world.path.handle(outbox_event()))
    for _ in range(20):
        await asyncio.sleep(0)
    world.source.release.set()
    await asyncio.gather(first, second)
    assert len(world.source.extracted) == 1
    assert len(world.tasks()) == 4
    assert world.telemetry.total("events_duplicate") == 1


def _assert_dead_lettered(world, message, code: ErrorCode):
    (sent,) = world.dead_letters()
    assert sent.key == message.key
    assert sent.value == message.value
    assert sent.headers["error_code"] == code
    assert sent.headers["error_message"]
    assert sent.headers["original_topic"] == TOPIC
    assert sent.headers["original_partition"] == "1"
    assert sent.headers["original_offset"] == str(message.offset)


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (b"{not json", ErrorCode.BAD_JSON),
        ({"event_id": "../../x", "payload": {"object": "input/a.mp4"}}, ErrorCode.BAD_ID),
    ],
)
async def test_an_event_without_a_usable_id_is_dead_lettered_without_a_document(
    tmp_path, value, code
):
    """Bad JSON or an id outside the allowlist: copied to outbox_events.dlq with the reason,
    and no document (there is no id to name it by)."""
    world = VideoWorld(tmp_path, extracted_frames(1))
    message = outbox_message(value)
    await world.path.handle(message)
    _assert_dead_lettered(world, message, code)
    assert world.store.documents == {}
    assert world.tasks() == []


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ({"event_id": "ev-1", "payload": {"object": "/etc/passwd"}}, ErrorCode.BAD_ID),
        ({"event_id": "ev-1"}, ErrorCode.SCHEMA),
    ],
)
async def test_a_refused_event_with_a_usable_id_is_dead_lettered_and_fails(tmp_path, value, code):
    """A traversal key or a schema violation with a valid event id: dead-lettered, and the
    event's document is failed with the code, so status and notices say why."""
    world = VideoWorld(tmp_path, extracted_frames(1))
    message = outbox_message(value)
    await world.path.handle(message)
    _assert_dead_lettered(world, message, code)
    document = world.store.document("ev-1")
    assert document["status"] == Status.FAILED
    assert document["error"]["code"] == code
    assert world.tasks() == []


async def test_a_missing_video_object_fails_the_event_and_dead_letters_it(tmp_path):
    """The object is not in the bucket: failed with missing_object, and to the DLQ with the
    event id in the copy's headers."""
    world = VideoWorld(tmp_path, extracted_frames(1))
    message = outbox_event("ev-2", "input/ev-2.mp4")
    await world.path.handle(message)
    assert world.dead_letters()[0].headers["event_id"] == "ev-2"
    document = world.store.document("ev-2")
    assert document is not None
    assert document["status"] == Status.FAILED
    assert document["error"]["code"] == ErrorCode.MISSING_OBJECT
    assert "input/ev-2.mp4" in document["error"]["message"]
    _assert_dead_lettered(world, message, ErrorCode.MISSING_OBJECT)
    assert world.tasks() == []


async def test_a_video_the_probe_refuses_fails_with_the_probes_code(tmp_path):
    """InvalidVideo from probe: failed with its code (here corrupt), dead-lettered, no task."""
    world = VideoWorld(
        tmp_path,
        extracted_frames(2),
        probe_error=InvalidVideo("moov atom not found", code=ErrorCode.CORRUPT),
    )
    message = outbox_event()
    await world.path.handle(message)
    document = world.store.document("ev-1")
    assert document is not None
    assert document["status"] == Status.FAILED
    assert document["error"] == {"code": "corrupt", "message": "moov atom not found"}
    _assert_dead_lettered(world, message, ErrorCode.CORRUPT)
    assert world.tasks() == []
    assert list(world.work_dir.iterdir()) == []


async def test_a_decoder_failure_part_way_fails_the_event_and_announces_no_total(tmp_path):
    """Corrupt data after some frames: failed with the decoder's code, never extracted."""
    world = VideoWorld(
        tmp_path,
        extracted_frames(4),
        extract_error=InvalidVideo("invalid NAL unit", code=ErrorCode.CORRUPT),
    )
    message = outbox_event()
    await world.path.handle(message)
    document = world.store.document("ev-1")
    assert document is not None
    assert document["status"] == Status.FAILED
    assert document["error"]["code"] == ErrorCode.CORRUPT
    assert document["total_frames"] is None
    _assert_dead_lettered(world, message, ErrorCode.CORRUPT)
    assert world.extractions() == 0
    assert world.source.closed == 1
    assert list(world.work_dir.iterdir()) == []


async def test_a_video_above_the_size_limit_fails_with_file_too_large(tmp_path):
    """The store refuses to download above max_bytes: failed file_too_large."""
    world = VideoWorld(tmp_path, extracted_frames(2), max_video_bytes=len(VIDEO) - 1)
    message = outbox_event()
    await world.path.handle(message)
    document = world.store.document("ev-1")
    assert document is not None
    assert document["error"]["code"] == ErrorCode.FILE_TOO_LARGE
    _assert_dead_lettered(world, message, ErrorCode.FILE_TOO_LARGE)


async def test_a_video_without_frames_fails_with_noextracted_frames(tmp_path):
    """Zero decodable frames: failed no_frames, never a processing event waiting forever."""
    world = VideoWorld(tmp_path, [])
    message = outbox_event()
    await world.path.handle(message)
    document = world.store.document("ev-1")
    assert document is not None
    assert document["status"] == Status.FAILED
    assert document["error"]["code"] == ErrorCode.NO_FRAMES
    assert document["total_frames"] is None
    _assert_dead_lettered(world, message, ErrorCode.NO_FRAMES)
    assert world.extractions() == 0


async def test_a_publisher_outage_propagates_as_retriable_and_leaves_the_event_processing(
    tmp_path,
):
    """Kafka not answering: RetriableError for the loop to retry, no total, no DLQ message."""
    world = VideoWorld(tmp_path, extracted_frames(5))
    world.publisher.fail_next(1, after=1)  # the partition count is read; the first batch fails
    with pytest.raises(RetriableError):
        await world.path.handle(outbox_event())
    document = world.store.document("ev-1")
    assert document is not None
    assert document["status"] == Status.PROCESSING
    assert document["total_frames"] is None
    assert world.dead_letters() == []
    assert world.extractions() == 0
    assert world.source.closed == 1
    assert list(world.work_dir.iterdir()) == []


async def test_the_retry_after_a_publisher_outage_completes_theoutbox_event(tmp_path):
    """The loop's retry of the same message publishes every frame and sets the total."""
    world = VideoWorld(tmp_path, extracted_frames(5))
    world.publisher.fail_next(1)
    message = outbox_event()
    with pytest.raises(RetriableError):
        await world.path.handle(message)
    await world.path.handle(message)
    document = world.store.document("ev-1")
    assert document is not None
    assert document["total_frames"] == 5
    assert {t.value["frame_id"] for t in world.tasks()} == {0, 5, 10, 15, 20}
    assert world.extractions() == 1


async def test_an_object_store_outage_propagates_as_retriable(tmp_path):
    """S3 not answering while downloading: RetriableError, the event stays processing."""
    world = VideoWorld(tmp_path, extracted_frames(1))
    world.objects.fail_next(1)
    with pytest.raises(RetriableError):
        await world.path.handle(outbox_event())
    document = world.store.document("ev-1")
    assert document is not None
    assert document["status"] == Status.PROCESSING
    assert world.publisher.sent == []


async def test_dead_letter_records_the_failure_of_a_message_the_loop_gave_up_on(tmp_path):
    """The loop's own dead_letter call fails a known event and copies the message to the DLQ."""
    world = VideoWorld(tmp_path, extracted_frames(1))
    world.store.put("ev-1", Status.PROCESSING)
    message = outbox_event()
    await world.path.dead_letter(message, InvalidVideo("boom", code=ErrorCode.INTERNAL))
    document = world.store.document("ev-1")
    assert document is not None
    assert document["status"] == Status.FAILED
    assert document["error"]["code"] == ErrorCode.INTERNAL
    _assert_dead_lettered(world, message, ErrorCode.INTERNAL)


async def test_a_redone_video_skips_the_frames_an_earlier_run_recorded(tmp_path):
    """A video redone after a crash (its first page of 64 tasks recorded, no total) decodes
    again but uploads and publishes only the frames after that page; the total counts all."""
    world = VideoWorld(tmp_path, extracted_frames(150))
    earlier = TaskPageAssembler("frames")
    for ordinal in range(TASKS_PER_PAGE):
        record = TaskRecord(
            ordinal * 5, ordinal * 200, 64, 48, f"frames/ev-1/{ordinal * 5}.jpg", 0, 0
        )
        if (page := earlier.add(ordinal, record)) is not None:
            await world.store.record_task_page("ev-1", page)
    await world.store.begin("ev-1", {"results_partitions": 4})
    await world.path.handle(outbox_event())
    published = sorted(t.value["frame_id"] for t in world.tasks())
    assert published == [ordinal * 5 for ordinal in range(TASKS_PER_PAGE, 150)]
    uploaded = {key for bucket, key in world.objects.objects if bucket == "frames"}
    assert uploaded == {f"frames/ev-1/{o * 5}.jpg" for o in range(TASKS_PER_PAGE, 150)}
    document = world.store.document("ev-1")
    assert document["total_frames"] == 150
    pages = [await world.store.read_task_page("ev-1", k) for k in range(3)]
    assert [len(c.tasks) for c in pages] == [64, 64, 22]
    assert world.telemetry.total("frames_resumed") == TASKS_PER_PAGE
