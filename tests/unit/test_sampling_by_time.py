"""Sampling by time and within a range: the pure rules, and the decode plan that follows them."""

from __future__ import annotations

import pytest

from video_runner.domain.results import is_expected_under
from video_runner.domain.sampling import SamplingPlan
from video_runner.extraction.bitstream import Picture
from video_runner.extraction.decode_plan import PacketInfo, plan_decoding

VFR_MS = [0, 40, 80, 200, 210, 220, 500, 540, 1000, 1040, 1500, 1900, 2000]


def test_fps_keeps_the_frame_nearest_each_step_of_a_variable_frame_rate_video():
    """At 2 fps the instants 0, 500, 1000, 1500, 2000 ms pick the frames shown then."""
    plan = SamplingPlan(every_n=None, fps=2.0)
    assert sorted(plan.select(VFR_MS)) == [0, 6, 8, 10, 12]


def test_a_tie_between_two_frames_goes_to_the_earlier_one():
    """An instant exactly between two frames keeps the one shown first."""
    plan = SamplingPlan(every_n=None, fps=2.0)
    assert sorted(plan.select([0, 480, 520, 1000])) == [0, 1, 3]


def test_instants_past_the_last_frame_select_nothing_and_a_frame_is_kept_once():
    """A rate above the video's keeps each frame once; the video is never stretched."""
    plan = SamplingPlan(every_n=None, fps=100.0)
    assert sorted(plan.select([0, 100, 200])) == [0, 1, 2]
    assert SamplingPlan(every_n=None, fps=1.0).select([]) == frozenset()


def test_a_range_keeps_only_frames_inside_it_with_their_global_indices():
    """start_ms is inclusive, end_ms exclusive; ids stay the frames' indices in the video."""
    by_time = SamplingPlan(every_n=None, fps=5.0, start_ms=200, end_ms=1100)
    assert sorted(by_time.select(VFR_MS)) == [3, 6, 7, 8]
    by_count = SamplingPlan(every_n=2, start_ms=100, end_ms=1500)
    assert sorted(by_count.select(VFR_MS)) == [4, 6, 8]


def test_the_document_form_names_only_what_is_set():
    """``{"every_n": 5}`` as before; a plan by time records its fps and range instead."""
    assert SamplingPlan().as_dict() == {"every_n": 5}
    plan = SamplingPlan(every_n=None, fps=2.0, start_ms=10, end_ms=20)
    assert plan.as_dict() == {"fps": 2.0, "start_ms": 10, "end_ms": 20}
    assert plan.is_time_based
    assert not SamplingPlan().is_time_based


def test_inconsistent_plans_are_refused():
    """Both or neither of every_n and fps, a zero rate or an empty range are errors."""
    for bad in (
        {"every_n": 5, "fps": 1.0},
        {"every_n": None},
        {"every_n": None, "fps": 0.0},
        {"every_n": 5, "start_ms": 100, "end_ms": 100},
    ):
        with pytest.raises(ValueError, match=r"every_n|fps|end_ms"):
            SamplingPlan(**bad)
    with pytest.raises(ValueError, match="select"):
        SamplingPlan(every_n=None, fps=1.0).is_selected(0)


def test_the_results_path_accepts_the_frames_each_form_of_sampling_can_select():
    """every_n bounds ids by count; a range only by divisibility (ids are global); fps any id."""
    assert is_expected_under({"every_n": 5}, 10, 3)
    assert not is_expected_under({"every_n": 5}, 15, 3)
    assert is_expected_under({"every_n": 5, "start_ms": 9000}, 1000, 3)
    assert not is_expected_under({"every_n": 5, "start_ms": 9000}, 1001, 3)
    assert is_expected_under({"fps": 2.0}, 1237, 3)
    assert not is_expected_under({"fps": 2.0}, -1, 3)


def _picture(*, idr=False, disposable=False):
    return Picture(
        has_picture=True, disposable=disposable, idr=idr, resets_output=False, temporal_id=0
    )


def test_a_plan_of_selected_frames_starts_at_the_keyframe_before_them_and_stops_after_them():
    """Packets before the last IDR preceding the first selected frame, and after the last
    selected one, never reach the decoder; the plan's ``selected`` are exactly the frames."""
    # Two GOPs of four in decoding and presentation order: I P P P I P P P.
    packets = [PacketInfo(pts, _picture(idr=pts % 4 == 0)) for pts in range(8)]
    plan = plan_decoding(packets, selected=frozenset({5, 6}))
    assert [bool(flag) for flag in plan.drop] == [True, True, True, True, False, False, False, True]
    assert plan.decoded_pts.tolist() == [4, 5, 6]
    assert [index for index in range(8) if plan.selects(index)] == [5, 6]
    intra = [PacketInfo(pts, None) for pts in range(8)]
    every_other = plan_decoding(intra, every_n=2)
    assert [index for index in range(8) if every_other.selects(index)] == [0, 2, 4, 6]
