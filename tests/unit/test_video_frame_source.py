"""The streaming frame source, checked against a plain decode-everything reference."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time

import imageio_ffmpeg
import numpy as np
import pytest

from support.videos import (
    decode_all_bgr,
    make_audio_only,
    make_video,
    real_video,
    truncate,
)
from video_runner.domain.params import Preprocessing, Sampling, VideoLimits
from video_runner.domain.preprocess import decode_jpeg, preprocess
from video_runner.errors import ErrorCode, InvalidVideo
from video_runner.extraction.frame_source import VideoFrameSource
from video_runner.ports import FrameSource

RAW = Preprocessing(blur_ksize=1, alpha=1.0, beta=0.0)


def extract_with_images(path, sampling=None, preprocessing=None, **kwargs):
    """Frames plus the exact pre-JPEG images, captured through the source's hook."""
    images = {}
    source = VideoFrameSource(
        sampling,
        preprocessing,
        image_hook=lambda frame_id, image: images.__setitem__(frame_id, image.copy()),
        **kwargs,
    )
    return list(source.iter_frames(path)), images


def reference(path, every_n=5, p=None):
    """Decode every frame sequentially, keep every n-th, preprocess with the plain calls."""
    p = p or Preprocessing()
    return [
        (index, round(time_s * 1000), preprocess(image, p))
        for index, (time_s, image) in enumerate(decode_all_bgr(path))
        if index % every_n == 0
    ]


def error_code(path, **kwargs):
    with pytest.raises(InvalidVideo) as caught:
        list(VideoFrameSource(**kwargs).iter_frames(path))
    return caught.value.code


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    return {
        "ten": make_video(d / "ten.mp4", 10),
        "rotated": make_video(d / "rotated.mp4", 10, rotation_ccw=90),
        "long": make_video(d / "long.mp4", 60),
    }


@pytest.mark.parametrize("name", ["bigbuckbunny.mp4", "bikes.mp4"])
def test_real_videos_yield_every_fifth_frame_with_the_reference_pixels_and_times(name):
    """Ids, timestamps and pre-JPEG pixels equal the sequential reference exactly."""
    path = real_video(name)
    frames, images = extract_with_images(path)
    expected = reference(path)
    assert [f.frame_id for f in frames] == [index for index, _, _ in expected]
    assert [f.timestamp_ms for f in frames] == [ms for _, ms, _ in expected]
    for frame, (index, _, image) in zip(frames, expected, strict=True):
        np.testing.assert_array_equal(images[index], image)
        decoded = decode_jpeg(frame.jpeg)
        assert (frame.height, frame.width, 3) == decoded.shape == image.shape
        assert np.abs(decoded.astype(int) - image.astype(int)).mean() < 4


def test_probe_reports_the_real_video_properties():
    """Size, rate, count, duration and codec come from the container."""
    info = VideoFrameSource().probe(real_video("bigbuckbunny.mp4"))
    assert (info.width, info.height, info.frame_count, info.rotation) == (1280, 720, 132, 0)
    assert info.fps == 25.0
    assert info.duration_ms == 5280
    assert info.codec == "h264"


@pytest.mark.parametrize(
    ("count", "ids"), [(1, [0]), (4, [0]), (5, [0]), (6, [0, 5]), (10, [0, 5])]
)
def test_short_videos_yield_the_expected_frame_ids(tmp_path, count, ids):
    """Frame 0 is always taken; the last partial group contributes its first frame only."""
    frames, _ = extract_with_images(make_video(tmp_path / "v.mp4", count))
    assert [f.frame_id for f in frames] == ids
    assert [f.timestamp_ms for f in frames] == [i * 40 for i in ids]


def test_timestamps_of_a_variable_frame_rate_video_come_from_presentation_times(tmp_path):
    """Irregular spacing is reported as encoded, not as index divided by an average rate."""
    pts = [0, 40, 50, 200, 210, 500, 530]
    path = make_video(tmp_path / "vfr.mp4", len(pts), pts_ms=pts)
    every, _ = extract_with_images(path, Sampling(every_n=1))
    assert [f.timestamp_ms for f in every] == pts
    fifth, _ = extract_with_images(path)
    assert [(f.frame_id, f.timestamp_ms) for f in fifth] == [(0, 0), (5, 500)]


def test_a_rotated_video_comes_out_upright_as_ffmpeg_displays_it(videos):
    """Display-matrix rotation is applied: the pixels equal FFmpeg's auto-rotated output."""
    path = videos["rotated"]
    info = VideoFrameSource().probe(path)
    assert (info.width, info.height, info.rotation) == (48, 64, 270)
    frames, images = extract_with_images(path, preprocessing=RAW)
    raw = subprocess.run(
        [
            *(imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path)),
            *("-f", "rawvideo", "-pix_fmt", "bgr24", "-"),
        ],
        capture_output=True,
        check=True,
    ).stdout
    upright = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 64, 48, 3)
    assert [(f.width, f.height) for f in frames] == [(48, 64), (48, 64)]
    for frame in frames:
        np.testing.assert_array_equal(images[frame.frame_id], upright[frame.frame_id])


@pytest.mark.parametrize(
    ("codec", "pix_fmt", "width", "height"),
    [
        ("libx264", "yuv444p", 63, 47),
        ("libvpx-vp9", "yuv420p", 64, 48),
        ("mjpeg", "yuvj420p", 64, 48),
    ],
    ids=["odd-dimensions", "vp9-in-mp4", "mjpeg-in-mp4"],
)
def test_other_codecs_and_odd_sizes_under_an_mp4_name_match_the_reference(
    tmp_path, codec, pix_fmt, width, height
):
    """The container's content decides, not the file name; odd sizes are kept as they are."""
    path = make_video(
        tmp_path / "v.mp4",
        10,
        codec=codec,
        pix_fmt=pix_fmt,
        width=width,
        height=height,
        container_format="mp4",
    )
    frames, images = extract_with_images(path)
    expected = reference(path)
    assert [f.frame_id for f in frames] == [0, 5]
    assert [(f.width, f.height) for f in frames] == [(width, height)] * 2
    for index, _, image in expected:
        np.testing.assert_array_equal(images[index], image)


def test_an_empty_file_is_reported_as_empty(tmp_path):
    """Zero bytes: EMPTY_FILE, before FFmpeg is asked anything."""
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    assert error_code(path) == ErrorCode.EMPTY_FILE


def test_a_text_file_named_mp4_is_not_a_video(tmp_path):
    """Text: NOT_A_VIDEO."""
    path = tmp_path / "notes.mp4"
    path.write_text("these are not the frames you are looking for\n" * 20)
    assert error_code(path) == ErrorCode.NOT_A_VIDEO


def test_an_audio_only_file_has_no_video_stream(tmp_path):
    """AAC in mp4 without video: NO_VIDEO_STREAM."""
    assert error_code(make_audio_only(tmp_path / "a.mp4")) == ErrorCode.NO_VIDEO_STREAM


def test_a_truncated_video_is_reported_as_corrupt_not_passed_off_as_complete(tmp_path):
    """An index promising 30 frames with only part of the data: CORRUPT after the frames so far."""
    path = truncate(make_video(tmp_path / "t.mp4", 30, faststart=True), 0.6)
    yielded = []
    with pytest.raises(InvalidVideo) as caught:
        yielded.extend(VideoFrameSource().iter_frames(path))
    assert caught.value.code == ErrorCode.CORRUPT
    assert len(yielded) < 6


def test_a_truncated_mp4_without_its_index_is_corrupt_rather_than_not_a_video(tmp_path):
    """The index (moov) written last and cut off: recognisably an mp4, so CORRUPT."""
    path = truncate(make_video(tmp_path / "t.mp4", 30), 0.6)
    assert error_code(path) == ErrorCode.CORRUPT


def test_a_truncated_webm_without_a_frame_count_is_caught_by_its_duration(tmp_path):
    """Matroska declares no frame count; frames stopping far before its duration: CORRUPT."""
    path = truncate(make_video(tmp_path / "t.webm", 100, codec="libvpx-vp9"), 0.5)
    assert error_code(path) == ErrorCode.CORRUPT


def test_limits_are_enforced_with_their_own_codes(videos, tmp_path):
    """Pixel, duration and file-size limits each have their code."""
    path = videos["ten"]
    assert error_code(path, limits=VideoLimits(max_pixels=64 * 48 - 1)) == ErrorCode.FRAME_TOO_LARGE
    assert error_code(path, limits=VideoLimits(max_duration_ms=300)) == ErrorCode.TOO_LONG
    assert error_code(path, limits=VideoLimits(max_bytes=100)) == ErrorCode.FILE_TOO_LARGE
    assert len(list(VideoFrameSource(limits=VideoLimits(None, None, None)).iter_frames(path))) == 2


def test_a_slow_consumer_holds_back_the_decoder_so_memory_stays_bounded(videos):
    """With nobody reading, at most the buffer plus the workers' frames get processed."""
    processed = []
    source = VideoFrameSource(
        Sampling(every_n=1),
        max_buffered_frames=2,
        workers=1,
        image_hook=lambda frame_id, _: processed.append(frame_id),
    )
    frames = source.iter_frames(videos["long"])
    next(frames)
    time.sleep(0.5)
    assert len(processed) <= 1 + 2 + 1 + 1
    frames.close()


def test_closing_early_stops_the_decoder_thread(videos):
    """Abandoning the iteration leaves no decoder or worker thread behind."""
    frames = VideoFrameSource(Sampling(every_n=1)).iter_frames(videos["long"])
    next(frames)
    frames.close()
    names = {t.name for t in threading.enumerate()}
    assert not any(n.startswith(("frame-decoder", "frame-worker")) for n in names)


async def test_async_extract_yields_what_the_sync_iterator_yields():
    """extract() wraps iter_frames: same frames, same order, same bytes."""
    path = real_video("bikes.mp4")
    source: FrameSource = VideoFrameSource()
    got = [frame async for frame in source.extract(path)]
    assert got == list(VideoFrameSource().iter_frames(path))
    assert source.probe(path).frame_count == 250


async def test_async_extract_can_stop_early_and_keeps_the_event_loop_responsive(videos):
    """Breaking out closes the pipeline; a ticker keeps running meanwhile."""
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.001)
            ticks += 1

    task = asyncio.create_task(ticker())
    stream = VideoFrameSource(Sampling(every_n=1)).extract(real_video("bigbuckbunny.mp4"))
    async for frame in stream:
        if frame.frame_id == 20:
            break
    await stream.aclose()
    task.cancel()
    assert ticks > 5
    names = {t.name for t in threading.enumerate()}
    assert not any(n.startswith("frame-decoder") for n in names)


async def test_cancelling_extract_while_it_starts_leaves_no_thread_behind(videos):
    """A cancellation that lands while the file is opened still closes the pipeline."""

    async def consume():
        async for _ in VideoFrameSource(Sampling(every_n=1)).extract(videos["long"]):
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(50):
        if not any(t.name.startswith("frame-decoder") for t in threading.enumerate()):
            break
        await asyncio.sleep(0.05)
    assert not any(t.name.startswith("frame-decoder") for t in threading.enumerate())
