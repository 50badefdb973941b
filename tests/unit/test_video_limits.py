"""The cap on work per video (``MAX_SAMPLED_FRAMES``) and the pixel check on every decoded frame.

A video bomb is a small file that makes a lot of work: 16x16 pictures at 1,000 fps cost about 65
bytes each, and every sampled frame becomes an S3 object, a frame record and a Kafka task. The cap
is checked three times, each as early as the file allows: against the header (a declared frame
count, or duration x average rate), against the packet count of the demux-only pass, and against
the frames actually decoded, because a container may declare nothing or lie.
"""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from support.videos import make_video
from video_runner.adapters.video import VideoFrameSource
from video_runner.adapters.video_plan import read_plan
from video_runner.domain.params import Sampling, VideoLimits
from video_runner.errors import ErrorCode, InvalidVideo
from video_runner.settings import load_settings


def _limits(max_sampled_frames: int | None, max_pixels: int | None = 3840 * 2160) -> VideoLimits:
    return VideoLimits(
        max_bytes=None,
        max_pixels=max_pixels,
        max_duration_ms=None,
        max_sampled_frames=max_sampled_frames,
    )


def _bomb(path: Path, frames: int = 200, container_format: str | None = None) -> Path:
    """16x16 pictures at 1,000 fps: a few KB of file, one sampled frame per 5 ms of video."""
    return make_video(
        path, frames=frames, width=16, height=16, fps=1000, container_format=container_format
    )


def _concatenated_h264(path: Path, parts: list[tuple[int, int, int]]) -> Path:
    """A raw H.264 stream of (frames, width, height) parts: its picture size changes mid-way."""
    data = b""
    for index, (frames, width, height) in enumerate(parts):
        piece = make_video(
            path.with_name(f"{path.stem}-{index}.h264"),
            frames=frames,
            width=width,
            height=height,
            container_format="h264",
        )
        data += piece.read_bytes()
    path.write_bytes(data)
    return path


def _failure(call) -> InvalidVideo:
    with pytest.raises(InvalidVideo) as caught:
        call()
    return caught.value


def test_the_default_cap_is_one_hundred_thousand_sampled_frames():
    """Without MAX_SAMPLED_FRAMES, the settings and the bare limits both cap at 100,000."""
    assert VideoLimits().max_sampled_frames == 100_000
    assert load_settings().limits.max_sampled_frames == 100_000


def test_max_sampled_frames_reaches_the_limits_from_the_environment(monkeypatch):
    """MAX_SAMPLED_FRAMES=250 in the environment becomes limits.max_sampled_frames == 250."""
    monkeypatch.setenv("MAX_SAMPLED_FRAMES", "250")
    assert load_settings().limits.max_sampled_frames == 250


def test_a_max_sampled_frames_below_one_is_a_settings_error(monkeypatch):
    """A cap of 0 would refuse every video: the settings refuse it instead."""
    monkeypatch.setenv("MAX_SAMPLED_FRAMES", "0")
    with pytest.raises(ValueError, match="max_sampled_frames"):
        load_settings()


def test_a_bomb_declaring_its_frame_count_fails_at_the_probe_as_too_many_frames(tmp_path):
    """16x16 at 1,000 fps, 200 declared frames, every 5th sampled: 40 sampled frames, above a cap
    of 10; the probe (which runs before any download is turned into frames) refuses it."""
    source = VideoFrameSource(Sampling(every_n=5), limits=_limits(10))
    error = _failure(lambda: source.probe(_bomb(tmp_path / "bomb.mp4")))
    assert error.code == ErrorCode.TOO_MANY_FRAMES
    assert "200 frames" in str(error)


def test_a_bomb_yields_no_frame_at_all_before_it_fails(tmp_path):
    """Extraction of the same bomb raises too_many_frames before the first frame is yielded, so
    nothing is ever uploaded for it."""
    frames = VideoFrameSource(Sampling(every_n=5), limits=_limits(10)).iter_frames(
        _bomb(tmp_path / "bomb.mp4")
    )
    assert _failure(lambda: next(frames)).code == ErrorCode.TOO_MANY_FRAMES


def test_a_video_with_exactly_the_cap_of_sampled_frames_is_extracted_whole(tmp_path):
    """200 frames at every 5th are 40 sampled frames: a cap of 40 lets all 40 through, 39 not."""
    path = _bomb(tmp_path / "bomb.mp4")
    source = VideoFrameSource(Sampling(every_n=5), limits=_limits(40))
    assert [f.frame_id for f in source.iter_frames(path)] == list(range(0, 200, 5))
    tight = VideoFrameSource(Sampling(every_n=5), limits=_limits(39))
    assert _failure(lambda: tight.probe(path)).code == ErrorCode.TOO_MANY_FRAMES


def test_no_cap_lets_the_bomb_through(tmp_path):
    """max_sampled_frames=None switches the cap off (the other limits still apply)."""
    source = VideoFrameSource(Sampling(every_n=5), limits=_limits(None))
    assert len(list(source.iter_frames(_bomb(tmp_path / "bomb.mp4")))) == 40


def test_a_bomb_without_a_frame_count_is_estimated_from_duration_and_rate(tmp_path):
    """Matroska declares no frame count: 200 ms at an average 1,000 fps is about 200 frames,
    refused at the probe against a cap of 10 sampled frames."""
    path = _bomb(tmp_path / "bomb.mkv", container_format="matroska")
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 0  # the premise: no count to read
    error = _failure(lambda: VideoFrameSource(limits=_limits(10)).probe(path))
    assert error.code == ErrorCode.TOO_MANY_FRAMES
    assert "1000 fps" in str(error)


def test_a_stream_with_no_header_to_check_is_refused_by_its_packet_count_before_decoding(
    tmp_path,
):
    """Raw H.264 declares neither count nor duration: the probe passes, but the demux-only pass
    counts 200 pictures against the 50 a cap of 10 at every 5th allows, before any decoding."""
    path = _bomb(tmp_path / "bomb.h264", container_format="h264")
    source = VideoFrameSource(Sampling(every_n=5), limits=_limits(10))
    source.probe(path)  # nothing in the header to refuse it by
    frames = source.iter_frames(path)
    error = _failure(lambda: next(frames))
    assert error.code == ErrorCode.TOO_MANY_FRAMES
    assert "holds more than 50 pictures" in str(error)  # the demux pass, not the decoder
    assert _failure(lambda: read_plan(path, 0, 5, max_frames=199)).code == ErrorCode.TOO_MANY_FRAMES
    read_plan(path, 0, 5, max_frames=200)  # exactly at the cap: a plan (or None), no error


def test_decoding_stops_at_the_cap_when_nothing_could_be_counted_before(tmp_path):
    """With every frame sampled there is no demux pass and raw H.264 has no header to trust: the
    decoder yields exactly the cap of frames, then fails as too_many_frames."""
    path = _bomb(tmp_path / "bomb.h264", container_format="h264")
    source = VideoFrameSource(Sampling(every_n=1), limits=_limits(25))
    frames = source.iter_frames(path)
    yielded = [next(frames).frame_id for _ in range(25)]
    assert yielded == list(range(25))
    assert _failure(lambda: next(frames)).code == ErrorCode.TOO_MANY_FRAMES


def test_the_decode_time_cap_also_holds_when_every_packet_is_decoded(tmp_path):
    """decode_all (the reference path, no decode plan) stops at the cap the same way."""
    path = _bomb(tmp_path / "bomb.h264", container_format="h264")
    source = VideoFrameSource(Sampling(every_n=5), limits=_limits(10), decode_all=True)
    frames = source.iter_frames(path)
    assert [next(frames).frame_id for _ in range(10)] == list(range(0, 50, 5))
    assert _failure(lambda: next(frames)).code == ErrorCode.TOO_MANY_FRAMES


def test_a_picture_too_large_in_an_unsampled_frame_fails_the_video(tmp_path):
    """Frame 0 is 64x48, frames 1 to 3 are 128x96 and never sampled at every 5th: the pixel limit
    (64x48) still refuses the video, because every decoded frame is checked."""
    path = _concatenated_h264(tmp_path / "grows.h264", [(1, 64, 48), (3, 128, 96)])
    source = VideoFrameSource(Sampling(every_n=5), limits=_limits(None, max_pixels=64 * 48))
    with av.open(str(path)) as container:  # the header is within the limit
        assert container.streams.video[0].codec_context.width == 64
    error = _failure(lambda: list(source.iter_frames(path)))
    assert error.code == ErrorCode.FRAME_TOO_LARGE
    assert "128x96" in str(error)


def test_the_same_growing_stream_passes_without_a_pixel_limit(tmp_path):
    """The stream above is a valid video: with no pixel limit it yields its one sampled frame."""
    path = _concatenated_h264(tmp_path / "grows.h264", [(1, 64, 48), (3, 128, 96)])
    source = VideoFrameSource(Sampling(every_n=5), limits=_limits(None, max_pixels=None))
    assert [f.frame_id for f in source.iter_frames(path)] == [0]


def test_a_picture_far_above_the_limit_is_refused_by_the_decoder_before_it_is_allocated(
    tmp_path,
):
    """64x48 pictures, then a 640x480 one, then 64x48 again, limit 64x48: FFmpeg's decoder
    (``max_pixels``, set from the limit) refuses the big picture itself, and the refusal is
    ``frame_too_large`` naming its size, not a decoding error."""
    path = _concatenated_h264(tmp_path / "jump.h264", [(5, 64, 48), (1, 640, 480), (5, 64, 48)])
    for every_n in (1, 5):
        source = VideoFrameSource(Sampling(every_n=every_n), limits=_limits(None, 64 * 48))
        error = _failure(lambda source=source: list(source.iter_frames(path)))
        assert error.code == ErrorCode.FRAME_TOO_LARGE
        assert "640x480" in str(error)
        assert "refused before it was decoded" in str(error)


def test_a_picture_just_above_the_limit_is_still_refused_once_decoded(tmp_path):
    """The decoder's bound leaves a little room (FFmpeg counts the stride-aligned width): a
    picture a few pixels over the limit gets through it, and the exact check refuses it."""
    path = _concatenated_h264(tmp_path / "nudge.h264", [(1, 64, 48), (3, 64, 50)])
    source = VideoFrameSource(Sampling(every_n=1), limits=_limits(None, max_pixels=64 * 49))
    error = _failure(lambda: list(source.iter_frames(path)))
    assert error.code == ErrorCode.FRAME_TOO_LARGE
    assert "frames of 64x50 exceed" in str(error)


def test_the_decoder_bound_comes_from_the_frame_pixel_setting():
    """MAX_FRAME_PIXELS is the one source of the limit: the decoder's bound is derived from it."""
    from video_runner.adapters.video_container import decoder_pixel_bound

    limit = load_settings().limits.max_pixels
    assert limit == 3840 * 2160
    assert limit < decoder_pixel_bound(limit) <= limit * 9 // 8
