"""The sampling plan: which frames are kept, and what a complete extraction yields."""

from __future__ import annotations

import pytest

from video_runner.domain.params import Sampling
from video_runner.domain.sampling import SamplingPlan


def test_the_default_plan_keeps_every_fifth_frame_starting_with_frame_zero():
    """Frames 0, 5, 10, ... are kept; the others are not."""
    plan = SamplingPlan.of(Sampling())
    assert [i for i in range(16) if plan.is_selected(i)] == [0, 5, 10, 15]


@pytest.mark.parametrize(
    ("frame_count", "expected"),
    [(0, []), (1, [0]), (4, [0]), (5, [0]), (6, [0, 5]), (10, [0, 5]), (11, [0, 5, 10])],
)
def test_expected_frame_ids_of_a_complete_extraction_follow_from_the_frame_count(
    frame_count, expected
):
    """Around the multiples of N, the expected ids and count agree with each other."""
    plan = SamplingPlan(every_n=5)
    assert list(plan.expected_frame_ids(frame_count)) == expected
    assert plan.expected_count(frame_count) == len(expected)


def test_every_frame_is_kept_when_n_is_one():
    """N=1 keeps everything."""
    plan = SamplingPlan(every_n=1)
    assert list(plan.expected_frame_ids(3)) == [0, 1, 2]
    assert all(plan.is_selected(i) for i in range(3))


def test_a_plan_agrees_with_its_own_selection_for_many_sizes():
    """expected_frame_ids is exactly the selected indices, for several N and counts."""
    for n in (1, 2, 3, 5, 7):
        plan = SamplingPlan(every_n=n)
        for count in range(30):
            selected = [i for i in range(count) if plan.is_selected(i)]
            assert list(plan.expected_frame_ids(count)) == selected
            assert plan.expected_count(count) == len(selected)


def test_nonsense_arguments_are_refused():
    """N below 1, a negative index or a negative count are programming errors."""
    with pytest.raises(ValueError, match="every_n"):
        SamplingPlan(every_n=0)
    with pytest.raises(ValueError, match="index"):
        SamplingPlan().is_selected(-1)
    with pytest.raises(ValueError, match="frame_count"):
        SamplingPlan().expected_count(-1)
