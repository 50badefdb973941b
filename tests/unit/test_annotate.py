"""Boxes drawn on frames, detections per class and along the video, the rate of a render."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from video_runner.domain.annotate import (
    color_hex,
    color_of,
    draw_detections,
    label_of,
    sampled_rate,
)
from video_runner.domain.detection_summary import class_counts, class_timeline, spread


def grey(width=200, height=120):
    return np.full((height, width, 3), 128, dtype=np.uint8)


def test_drawing_a_box_changes_its_outline_and_leaves_the_input_untouched():
    """The box's edge takes the class colour in a copy; the caller's image is not modified."""
    image = grey()
    before = image.copy()
    drawn = draw_detections(image, [{"class": "person", "box": [40, 50, 120, 110], "conf": 0.9}])
    assert np.array_equal(image, before)
    assert drawn.shape == image.shape
    assert drawn.dtype == np.uint8
    assert tuple(int(v) for v in drawn[110, 80]) == color_of("person")
    # Inside the box, away from the label, the picture is as it was.
    assert tuple(int(v) for v in drawn[90, 80]) == (128, 128, 128)


def test_no_objects_gives_an_identical_copy():
    """Without detections the drawn frame equals the stored one, pixel for pixel."""
    image = grey()
    drawn = draw_detections(image, [])
    assert drawn is not image
    assert np.array_equal(drawn, image)


def test_a_box_partly_outside_the_frame_is_clipped_and_one_wholly_outside_is_skipped():
    """Clipping keeps the visible part; a box with no area inside draws nothing."""
    image = grey(100, 80)
    clipped = draw_detections(image, [{"class": "car", "box": [-50, -50, 60, 60], "conf": 0.5}])
    assert tuple(int(v) for v in clipped[60, 30]) == color_of("car")
    outside = draw_detections(image, [{"class": "car", "box": [200, 200, 300, 300], "conf": 0.5}])
    assert np.array_equal(outside, image)


@pytest.mark.parametrize(
    "bad",
    [
        {"class": "x", "box": [1, 2, 3], "conf": 0.5},
        {"class": "x", "box": "oops", "conf": 0.5},
        {"class": "x", "box": [float("nan"), 0, 10, 10], "conf": 0.5},
        {"class": "x", "conf": 0.5},
    ],
)
def test_a_malformed_object_is_skipped_without_hiding_the_others(bad):
    """One bad box never raises, and the good box beside it is still drawn."""
    good = {"class": "person", "box": [10, 10, 60, 60], "conf": 0.7}
    drawn = draw_detections(grey(), [bad, good])
    assert tuple(int(v) for v in drawn[60, 30]) == color_of("person")


def test_each_class_has_one_stable_colour_and_a_readable_label():
    """The colour depends on the class name only (not on a per-process hash salt)."""
    assert color_of("person") == color_of("person")
    assert color_hex("person").startswith("#")
    assert len(color_hex("person")) == 7
    assert label_of({"class": "dog", "conf": 0.8731}) == "dog 0.87"


def test_the_render_rate_is_the_source_rate_over_the_sampling_step():
    """25 fps every 5th frame plays at 5 fps; NTSC rates stay exact; unknown falls back to 25."""
    assert sampled_rate(25.0, 5) == 5
    assert sampled_rate(29.97002997, 5) == Fraction(30000, 1001) / 5
    assert sampled_rate(None, 5) == 5
    assert sampled_rate(30.0, None) == 30


def test_detections_are_counted_per_class_most_frequent_first():
    """Counts over every frame, sorted by count then name."""
    frames = [
        (0, [{"class": "person"}, {"class": "car"}]),
        (5, [{"class": "person"}]),
        (10, []),
        (15, [{"class": "bike"}, {"class": "car"}]),
    ]
    assert list(class_counts(frames).items()) == [("car", 2), ("person", 2), ("bike", 1)]


def test_the_timeline_puts_each_detection_in_the_slice_of_the_video_it_happens_in():
    """Frame ids map onto equal slices of the video's length; one past the end lands last."""
    frames = [
        (0, [{"class": "person"}]),
        (50, [{"class": "person"}, {"class": "car"}]),
        (99, [{"class": "car"}]),
        (140, [{"class": "car"}]),
    ]
    timeline = class_timeline(frames, span_frames=100, bins=4)
    assert timeline == {"car": [0, 0, 1, 2], "person": [1, 0, 1, 0]}
    with pytest.raises(ValueError, match="bins"):
        class_timeline(frames, span_frames=100, bins=0)


def test_spreading_keeps_the_first_and_last_items_and_at_most_the_limit():
    """A long video's grid shows evenly spaced frames, its first and last included."""
    items = list(range(0, 500, 5))
    picked = spread(items, 10)
    assert len(picked) == 10
    assert picked[0] == 0
    assert picked[-1] == 495
    assert picked == sorted(set(picked))
    assert spread([1, 2, 3], 10) == [1, 2, 3]
    assert spread([1, 2, 3], 1) == [1]
    assert spread([1, 2, 3], 0) == []
