"""A video cut into segments, each decoded on its own through ranged reads, gives exactly the
frames (ids, timestamps, sizes, JPEG bytes) its decoding as one file gives; what cannot be cut
safely is one segment, with the reason."""

from __future__ import annotations

import dataclasses

import av
import numpy as np
import pytest

from support.segment_videos import NOT_CUT, segment_videos
from support.videos import make_ffmpeg_video
from video_runner.domain.sampling import SamplingPlan
from video_runner.errors import ErrorCode, InvalidVideo
from video_runner.extraction.frame_source import VideoFrameSource
from video_runner.extraction.mp4_index import NotIndexed, read_track_table
from video_runner.extraction.range_reader import BLOCK_BYTES, RangeReader

X264 = ("-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "12")
EVERY_5 = SamplingPlan(every_n=5)
PLANS = {
    "every-5": EVERY_5,
    "every-1": SamplingPlan(every_n=1),
    "fps-3": SamplingPlan(every_n=None, fps=3.0),
    "range": SamplingPlan(every_n=2, start_ms=700, end_ms=3300),
}
SECONDS = 1.0
KINDS = [*sorted(NOT_CUT), "h264-b-frames", "h264-no-b-frames", "h264-vfr", "h264-audio"]
KINDS += ["h264-odd-size-444", "hevc-closed-gops", "pyav-rotated", "bikes"]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    return segment_videos(tmp_path_factory.mktemp("segments"))


def reader_of(path, **kwargs):
    data = path.read_bytes()
    return RangeReader(lambda start, end: data[start:end], len(data), name=path.name, **kwargs)


class Counted:
    """A fetch over a file's bytes that counts what it was asked for."""

    def __init__(self, path):
        self.data = path.read_bytes()
        self.name = path.name
        self.fetched = 0

    def __call__(self, start, end):
        self.fetched += end - start
        return self.data[start:end]

    def args(self):
        return self, len(self.data), self.name


def frames_of(frames):
    return [(f.frame_id, f.timestamp_ms, f.width, f.height, f.jpeg) for f in frames]


def whole_and_segmented(path, plan, seconds=SECONDS):
    source = VideoFrameSource()
    whole = frames_of(source.iter_frames(path, plan))
    planned = source.plan_segments(*Counted(path).args(), plan, seconds)
    if planned.plan is None:
        return whole, None, planned
    pieces = [
        frames_of(source.iter_segment(*Counted(path).args(), segment, plan))
        for segment in planned.plan.segments
    ]
    return whole, pieces, planned


@pytest.mark.parametrize("name", KINDS)
def test_every_kind_of_video_gives_the_same_frames_cut_into_segments_or_whole(videos, name):
    """H.264 with and without B-frames, VFR, audio, odd sizes, rotation, closed-GOP HEVC and a
    real video are cut into several segments whose frames, one after the other, are the whole
    file's byte for byte; Matroska and MJPEG are one segment, with a reason."""
    cut = name not in NOT_CUT
    whole, pieces, planned = whole_and_segmented(videos[name], EVERY_5)
    if not cut:
        assert pieces is None
        assert planned.reason
        return
    assert planned.info == VideoFrameSource().probe(videos[name])
    assert pieces is not None, planned.reason
    assert len(pieces) >= 3
    assert [f for piece in pieces for f in piece] == whole
    assert planned.plan.sampled == len(whole)
    starts = [s.first_ordinal for s in planned.plan.segments]
    assert starts == list(np.cumsum([0, *(len(p) for p in pieces[:-1])]))


@pytest.mark.parametrize("plan", PLANS.values(), ids=list(PLANS))
def test_sampling_by_index_by_rate_and_by_time_range_is_global_across_cuts(videos, plan):
    """Every N-th frame, N frames a second and a time range select across segment boundaries
    exactly the frames they select in the whole video (the VFR file, where time is uneven)."""
    whole, pieces, planned = whole_and_segmented(videos["h264-vfr"], plan)
    assert pieces is not None, planned.reason
    assert [f for piece in pieces for f in piece] == whole
    assert [len(s.selected) for s in planned.plan.segments] == [len(p) for p in pieces]


@pytest.fixture(scope="module")
def bigger_audio_video(tmp_path_factory):
    """8 s of 640x360 with a tone: a file many times the reader's block."""
    return make_ffmpeg_video(
        tmp_path_factory.mktemp("share") / "big.mp4",
        200,
        size="640x360",
        output_args=(*X264, "-b:v", "3M"),
        with_audio=True,
    )


def test_each_segment_reads_about_its_share_of_the_file(bigger_audio_video):
    """Decoding a segment fetches what opening the file fetches (its header and first block),
    then its own bytes (its pictures, the audio between them) and at most a block around
    them: never the file."""
    path = bigger_audio_video
    planned = VideoFrameSource().plan_segments(*Counted(path).args(), EVERY_5, SECONDS)
    header = reader_of(path)
    with av.open(header) as container:
        opening = header.fetched
        entries = container.streams.video[0].index_entries
        spans = [
            entries[s.end_frame - 1].pos
            + entries[s.end_frame - 1].size
            - entries[s.first_frame].pos
            for s in planned.plan.segments
        ]
    for segment, span in zip(planned.plan.segments, spans, strict=True):
        fetch = Counted(path)
        list(VideoFrameSource().iter_segment(*fetch.args(), segment, EVERY_5))
        assert fetch.fetched - opening <= span + 2 * BLOCK_BYTES, segment.index
    assert len(spans) >= 4
    assert max(spans) < path.stat().st_size / 3


def test_a_segment_whose_pictures_are_not_what_the_plan_says_is_a_corrupt_video(videos):
    """A plan whose last picture is one too many (an index that lies) stops the segment with
    ``corrupt`` naming it, after its real frames, never with wrong frames."""
    path = videos["h264-b-frames"]
    planned = VideoFrameSource().plan_segments(*Counted(path).args(), EVERY_5, SECONDS)
    segment = planned.plan.segments[1]
    lying = dataclasses.replace(segment, last_pts=segment.last_pts + 1)
    with pytest.raises(InvalidVideo) as caught:
        list(VideoFrameSource().iter_segment(*Counted(path).args(), lying, EVERY_5))
    assert caught.value.code is ErrorCode.CORRUPT
    assert f"segment 1 of {segment.count}" in str(caught.value)


def test_segments_are_off_at_zero_seconds_and_short_videos_are_one_segment(videos):
    """``SEGMENT_SECONDS=0`` and a video shorter than two segments both decode whole."""
    path = videos["h264-b-frames"]
    off = VideoFrameSource().plan_segments(*Counted(path).args(), EVERY_5, 0)
    short = VideoFrameSource().plan_segments(*Counted(path).args(), EVERY_5, 60.0)
    assert off.plan is None
    assert "off" in (off.reason or "")
    assert short.plan is None
    assert "shorter than two segments" in (short.reason or "")


def test_the_mp4_index_gives_the_demuxers_presentation_timestamps(videos):
    """FFmpeg's index (decoding times) plus the ``ctts`` offsets read from ``moov`` are the
    pts the demuxer gives each packet, for B-frames, VFR and HEVC."""
    for name in ("h264-b-frames", "h264-vfr", "hevc-closed-gops", "bikes"):
        path = videos[name]
        reader = reader_of(path)
        with av.open(reader) as container:
            stream = container.streams.video[0]
            dts = [entry.timestamp for entry in stream.index_entries]
            table = read_track_table(reader, reader.size, stream.id)
        with av.open(str(path)) as container:
            demuxed = [p.pts for p in container.demux(container.streams.video[0]) if p.size]
        assert (np.array(dts) + table.composition_offsets).tolist() == demuxed, name


def test_a_file_without_moov_is_not_indexed(tmp_path):
    """A Matroska file has no MP4 sample table: ``NotIndexed``, with the reason."""
    path = make_ffmpeg_video(tmp_path / "v.mkv", 10)
    reader = reader_of(path)
    with pytest.raises(NotIndexed, match="moov"):
        read_track_table(reader, reader.size, 1)


def test_the_range_reader_seeks_reads_and_caches_blocks():
    """Reads across blocks give the object's bytes; a block read twice is fetched once while
    cached; ``read_at`` fetches exactly what it is asked for."""
    data = bytes(range(256)) * 40
    asked: list[tuple[int, int]] = []

    def fetch(start, end):
        asked.append((start, end))
        return data[start:end]

    reader = RangeReader(fetch, len(data), block_bytes=1000, cached_blocks=2)
    reader.seek(990)
    assert reader.read(20) == data[990:1010]
    reader.seek(-5, 2)
    assert reader.read() == data[-5:]
    reader.seek(995)
    assert reader.read(10) == data[995:1005]
    reader.seek(1500)
    assert reader.read(10) == data[1500:1510]  # block 1 is still cached
    assert asked == [(0, 1000), (1000, 2000), (10000, 10240), (0, 1000), (1000, 2000)]
    assert reader.read_at(5, 3) == data[5:8]
    assert asked[-1] == (5, 8)
    assert reader.tell() == 1510
    assert reader.fetched == 4000 + 240 + 3
