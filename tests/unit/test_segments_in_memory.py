"""The segments path on fakes, built through the composition root with the real frame source:
a long video planned into segments, each handled as any runner would, publishes what decoding it
whole publishes; redeliveries change nothing; a poison segment fails the video with its code; a
failed read is retried, never blamed on the video."""

from __future__ import annotations

import json

import pytest

from support.fakes import (
    FakeConsumedOffsets,
    FakeMessage,
    FakeObjectStore,
    FakePredictionStore,
    FakePublisher,
    RecordingTelemetry,
)
from support.videos import make_ffmpeg_video
from support.worlds import outbox_event
from video_runner.bootstrap import services
from video_runner.domain.status import Status
from video_runner.errors import DependencyUnavailable, ErrorCode, RetriableError
from video_runner.extraction import VideoFrameSource
from video_runner.settings import load_settings

X264 = ("-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "25")


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """6 s at 25 fps with a keyframe a second and B-frames."""
    return make_ffmpeg_video(tmp_path_factory.mktemp("long") / "v.mp4", 150, output_args=X264)


class World:
    """A runner's services on fakes, the real frame source cutting and decoding segments."""

    def __init__(self, tmp_path, video, seconds):
        self.settings = load_settings(work_dir=str(tmp_path / "work"), segment_seconds=seconds)
        self.store = FakePredictionStore()
        self.objects = FakeObjectStore()
        self.objects.objects["videos", "input/ev-1.mp4"] = video.read_bytes()
        self.publisher = FakePublisher()
        self.telemetry = RecordingTelemetry()
        source = VideoFrameSource()
        self.runner = services.runner_services(
            self.settings,
            store=self.store,
            objects=self.objects,
            publisher=self.publisher,
            frames=source,
            offsets=FakeConsumedOffsets(),
            telemetry=self.telemetry,
            segment_source=source,
            ranges=self.objects,
        )

    def segment_messages(self):
        return [
            FakeMessage(
                topic=self.settings.topic_video_segments,
                partition=index % 4,
                offset=index,
                key=sent.key.encode(),
                value=json.dumps(sent.value).encode(),
            )
            for index, sent in enumerate(self.publisher.on(self.settings.topic_video_segments))
        ]

    def tasks(self):
        return [
            (t.value["frame_id"], t.value["timestamp_ms"])
            for t in self.publisher.on(self.settings.topic_inference_tasks)
        ]

    def pages(self):
        """Each page's records, less the offsets (the order of publication differs)."""
        return {
            key: [
                (t.frame_id, t.timestamp_ms, t.width, t.height, t.object_key, t.partition)
                for t in page.tasks
            ]
            for key, page in self.store.task_pages.items()
        }


async def whole_and_cut(tmp_path, video):
    whole = World(tmp_path / "whole", video, seconds=0)
    await whole.runner.video.handle(outbox_event())
    cut = World(tmp_path / "cut", video, seconds=1.0)
    await cut.runner.video.handle(outbox_event())
    return whole, cut


async def test_a_video_cut_into_segments_publishes_what_decoding_it_whole_publishes(
    tmp_path, video
):
    """The planner publishes one message per segment (round-robin over partitions) and
    downloads nothing; the segments, handled in reverse order, publish the whole video's tasks
    once each, the same task pages (but for the offsets), and the last one sets
    ``total_frames``."""
    whole, cut = await whole_and_cut(tmp_path, video)
    messages = cut.segment_messages()
    assert len(messages) >= 4
    assert cut.objects.downloads == []
    assert cut.tasks() == []
    planned = cut.store.documents["ev-1"]
    assert planned["segments"]["count"] == len(messages)
    for message in reversed(messages):
        await cut.runner.segments.handle(message)
    assert sorted(cut.tasks()) == whole.tasks()
    assert cut.pages() == whole.pages()
    done = cut.store.documents["ev-1"]
    assert done["total_frames"] == whole.store.documents["ev-1"]["total_frames"] == 30
    assert done["video"] == whole.store.documents["ev-1"]["video"]


async def test_redelivered_segments_publish_nothing_again(tmp_path, video):
    """Every segment handled twice: each task once, and the event extracted once."""
    _, cut = await whole_and_cut(tmp_path, video)
    messages = cut.segment_messages()
    for message in messages + messages:
        await cut.runner.segments.handle(message)
    ids = [frame for frame, _ in cut.tasks()]
    assert sorted(ids) == list(range(0, 150, 5))
    assert cut.telemetry.total("events_extracted") == 1


async def test_a_poison_segment_fails_the_video_with_its_code_and_is_dead_lettered(tmp_path, video):
    """A segment whose pictures are not what its message says: the event is ``failed`` with
    ``corrupt``, the message goes to ``video_segments.dlq``, later segments do nothing."""
    _, cut = await whole_and_cut(tmp_path, video)
    first, *rest = cut.segment_messages()
    lying = json.loads(first.value)
    lying["segment"]["last_pts"] += 1
    await cut.runner.segments.handle(
        FakeMessage(topic=first.topic, key=first.key, value=json.dumps(lying).encode())
    )
    document = cut.store.documents["ev-1"]
    assert document["status"] == Status.FAILED.value
    assert document["error"]["code"] == str(ErrorCode.CORRUPT)
    assert len(cut.publisher.on(cut.settings.dlq_topic(cut.settings.topic_video_segments))) == 1
    published = len(cut.tasks())
    for message in rest:
        await cut.runner.segments.handle(message)
    assert len(cut.tasks()) == published


async def test_a_failed_read_mid_segment_is_retried_not_blamed_on_the_video(tmp_path, video):
    """S3 stops answering while a segment is read: the handler raises the retriable error,
    the event stays ``processing``, and the retry publishes the segment."""
    _, cut = await whole_and_cut(tmp_path, video)
    message = cut.segment_messages()[1]
    cut.objects.fail_next(1)  # the first read of the segment
    with pytest.raises(DependencyUnavailable):
        await cut.runner.segments.handle(message)
    assert cut.store.documents["ev-1"]["status"] == Status.PROCESSING.value
    await cut.runner.segments.handle(message)
    assert len(cut.tasks()) > 0


async def test_the_last_segment_waits_for_the_plan_to_be_recorded_before_finishing(tmp_path, video):
    """Segments done before the planner's write of the plan landed: the last one raises a
    retriable error (never two writes of one document at once), and its retry finishes."""
    _, cut = await whole_and_cut(tmp_path, video)
    plan = cut.store.documents["ev-1"].pop("segments")
    *first, last = cut.segment_messages()
    for message in first:
        await cut.runner.segments.handle(message)
    with pytest.raises(RetriableError, match="not recorded yet"):
        await cut.runner.segments.handle(last)
    assert cut.store.documents["ev-1"].get("total_frames") is None
    cut.store.documents["ev-1"]["segments"] = plan
    await cut.runner.segments.handle(last)
    assert cut.store.documents["ev-1"]["total_frames"] == 30
