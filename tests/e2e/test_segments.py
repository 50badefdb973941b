"""Long videos cut into segments across runners, as processes on the real stack: the final JSON
is the one decoding whole gives, byte for byte, and a runner killed mid-segment loses nothing.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from support.faults import System, logged, merged_json
from support.segment_videos import NOT_CUT, segment_videos
from support.stack import isolated_settings, publish_video_event, store_of
from support.videos import make_ffmpeg_video
from video_runner import bootstrap

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

X264 = ("-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "25")
SEGMENT_SECONDS = 1.0


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    return segment_videos(tmp_path_factory.mktemp("segment-videos"), frames=125, gop=25)


def system_of(tmp_path, name, bucket, **settings):
    """One runner, an inference worker (HOG: its detections are exact across runs) and an
    outbox-S3 worker, with the videos bucket shared with the other system."""
    chosen = isolated_settings(
        tmp_path / name / "work", bucket_videos=bucket, detector="hog", **settings
    )
    (tmp_path / name).mkdir(exist_ok=True)
    return System(chosen, tmp_path / name)


async def final_json(system, event_id, key):
    """Submit the video at ``key`` as ``event_id``; the bytes of its final JSON once ready."""
    settings = system.settings
    await publish_video_event(settings, event_id, key)
    view = await system.wait_status(
        event_id, lambda v: v["status"] in {"ready", "failed"}, timeout_s=240
    )
    assert view["status"] == "ready", (event_id, view.get("error"), system.log_tail())
    return await bootstrap.object_store(settings).get_bytes(
        settings.bucket_videos, f"detection/{event_id}.json"
    )


async def test_every_kind_of_video_gives_the_same_final_json_with_segments_on_and_off(
    tmp_path, videos
):
    """H.264 with and without B-frames, VFR, audio, an odd size, rotation, closed-GOP HEVC and a
    real video end ``ready`` with the same final JSON byte for byte whether one runner decodes
    them whole or their segments go round ``video_segments``; Matroska and MJPEG in AVI are
    decoded whole either way."""
    first = isolated_settings(tmp_path / "setup")
    bucket = first.bucket_videos
    objects = bootstrap.object_store(first)
    await objects.ensure_bucket(bucket)
    for name, path in videos.items():
        await objects.upload_file(bucket, f"input/{name}{path.suffix}", path, "video/mp4")
    outputs = {}
    for mode, seconds in (("whole", 0.0), ("segments", SEGMENT_SECONDS)):
        system = system_of(tmp_path, mode, bucket, segment_seconds=seconds)
        system.start(runners=1)
        try:
            for name, path in videos.items():
                outputs[mode, name] = await final_json(
                    system, f"same-{name}", f"input/{name}{path.suffix}"
                )
            log = system.logs / "runner-1.log"
            cut = {
                name for name in videos if logged(log, f"same-{name}", "video cut into segments")
            }
        finally:
            system.stop()
        if mode == "whole":
            assert cut == set()
        else:
            assert cut == set(videos) - NOT_CUT
    for name in videos:
        whole, segmented = outputs["whole", name], outputs["segments", name]
        assert json.loads(whole)["total_frames"] > 0
        assert segmented == whole, name


async def test_two_runners_share_a_long_video_and_one_killed_mid_segment_loses_nothing(tmp_path):
    """A 60 s video in 12 segments over two runners; one is SIGKILLed while it decodes a
    segment: the other takes its segments over, and the video is ``ready`` once with every
    5th frame once (a third runner replaces the dead one, as a deployment would)."""
    video = make_ffmpeg_video(
        tmp_path / "long.mp4", 1500, size="320x240", output_args=(*X264, "-b:v", "400k")
    )
    settings = isolated_settings(
        tmp_path / "work", detector="hog", segment_seconds=5.0, kafka_topic_partitions=4
    )
    system = System(settings, tmp_path)
    objects = bootstrap.object_store(settings)
    await objects.ensure_bucket(settings.bucket_videos)
    await objects.upload_file(settings.bucket_videos, "input/long.mp4", video, "video/mp4")
    store = store_of(settings)
    system.start(runners=2)
    try:
        await publish_video_event(settings, "long-1", "input/long.mp4")
        victim = await _a_runner_inside_a_segment(system, "long-1")
        victim.kill()
        system.add_runner()
        view = await system.wait_status(
            "long-1", lambda v: v["status"] in {"ready", "failed"}, timeout_s=400
        )
        assert view["status"] == "ready", (view.get("error"), system.log_tail())
        document = await merged_json(settings, "long-1")
        ids = [f["frame_id"] for f in document["frames"]]
        assert ids == list(range(0, 1500, 5))
        prediction = await store.get("long-1")
        assert prediction.document["segments"] == {"count": 12, "frames": 300}
        claims = [f"segment-{index}" for index in range(12)]
        assert await store.claims_held("long-1", claims) == set(claims)
        await asyncio.sleep(3.0)  # a second move to ready would come now: none may
        assert system.ready_count() == 1
    finally:
        system.stop()
        await store.close()


async def _a_runner_inside_a_segment(system, event_id, timeout_s=120.0):
    """The first runner seen with a segment of ``event_id`` begun and not yet published."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        for runner in system.runners:
            text = runner.log_text()
            started = text.count('"segment started"')
            finished = text.count('"segment published"')
            if event_id in text and started > finished:
                return runner
        await asyncio.sleep(0.1)
    raise AssertionError(f"no runner began a segment of {event_id}: {system.log_tail()}")
