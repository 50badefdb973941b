"""The frame source with a per-video plan by time: nearest frames by PTS, ranges, exact decoding."""

from __future__ import annotations

import pytest

from support.videos import decode_all_bgr, make_ffmpeg_video, make_video
from video_runner.domain.sampling import SamplingPlan
from video_runner.extraction.frame_source import VideoFrameSource

VFR_MS = [0, 40, 80, 200, 210, 220, 500, 540, 1000, 1040, 1500, 1900, 2000]
X264_GOP = ("-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "50")


def _nearest(times_ms: list[int], instants: list[float]) -> list[int]:
    """The reference rule, written plainly: the nearest frame to each instant, earlier on ties."""
    return sorted(
        {min(range(len(times_ms)), key=lambda i: (abs(times_ms[i] - t), i)) for t in instants}
    )


def test_a_variable_frame_rate_video_at_2_fps_gives_the_frames_nearest_each_half_second(tmp_path):
    """Ids and timestamps are those of the frames shown nearest 0, 0.5, 1, 1.5 and 2 s."""
    path = make_video(tmp_path / "vfr.mp4", len(VFR_MS), pts_ms=VFR_MS)
    times = [round(t * 1000) for t, _ in decode_all_bgr(path)]
    frames = list(VideoFrameSource().iter_frames(path, SamplingPlan(every_n=None, fps=2.0)))
    assert [f.frame_id for f in frames] == _nearest(times, [0, 500, 1000, 1500, 2000])
    assert [f.timestamp_ms for f in frames] == [times[f.frame_id] for f in frames]


@pytest.mark.parametrize(
    "plan",
    [
        SamplingPlan(every_n=None, fps=2.0),
        SamplingPlan(every_n=None, fps=1.0, start_ms=4000, end_ms=8000),
        SamplingPlan(every_n=5, start_ms=4000, end_ms=6000),
    ],
    ids=["fps", "fps-range", "every-n-range"],
)
def test_plans_by_time_decode_selectively_to_exactly_the_frames_full_decoding_gives(tmp_path, plan):
    """The decode plan's selected set is the plan's frames: the same bytes as decoding all,
    with its six GOPs decoded by parallel lanes."""
    path = make_ffmpeg_video(tmp_path / "gop.mp4", 300, output_args=X264_GOP)
    source = VideoFrameSource()
    frames = list(source.iter_frames(path, plan))
    assert source.last_mode == "selective"
    assert source.last_chunks == 6
    assert frames == list(VideoFrameSource(decode_all=True).iter_frames(path, plan))


def test_a_range_yields_only_frames_inside_it_with_global_ids_and_skips_earlier_gops(tmp_path):
    """4 s to 6 s of a 25 fps video: ids 100..145 by 5, and the first two GOPs are never
    decoded (decoding starts at the keyframe of frame 100)."""
    path = make_ffmpeg_video(tmp_path / "gop.mp4", 300, output_args=X264_GOP)
    source = VideoFrameSource()
    frames = list(source.iter_frames(path, SamplingPlan(every_n=5, start_ms=4000, end_ms=6000)))
    assert [f.frame_id for f in frames] == list(range(100, 150, 5))
    assert all(4000 <= f.timestamp_ms < 6000 for f in frames)
    assert source.last_dropped >= 100 + 150


def test_a_sparse_plan_by_time_decodes_each_gop_only_up_to_its_last_kept_frame(tmp_path):
    """1 fps of a 25 fps video with 2 s GOPs keeps frames 0 and 25 of each GOP: the pictures
    decoded after frame 25 of a GOP are never decoded (over two thirds of all packets are kept
    from the decoder, against half when only non-reference pictures went), and the frames are
    exactly those of full decoding."""
    path = make_ffmpeg_video(tmp_path / "gop.mp4", 300, output_args=X264_GOP)
    plan = SamplingPlan(every_n=None, fps=1.0)
    source = VideoFrameSource()
    frames = list(source.iter_frames(path, plan))
    assert source.last_dropped > 2 * source.last_packets // 3
    assert frames == list(VideoFrameSource(decode_all=True).iter_frames(path, plan))
