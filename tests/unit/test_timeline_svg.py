"""The dashboard's per-class timeline: bins drawn as one SVG path per shade."""

from __future__ import annotations

from video_runner.entrypoints.timeline_svg import Shade, timeline_shades


def test_adjacent_bins_of_a_shade_are_one_run_and_empty_bins_draw_nothing():
    """Counts 0, 4, 4, 1, 0, 4 against a peak of 4: the full bins 1-2 are one run, bin 5 a
    second run of the same path; the single count is the lightest shade."""
    assert timeline_shades([0, 4, 4, 1, 0, 4]) == [
        Shade("0.44", "M3 0h1v1H3z"),
        Shade("1.00", "M1 0h2v1H1zM5 0h1v1H5z"),
    ]


def test_a_class_never_seen_has_no_shade():
    """No bin above zero (or no bin at all): nothing to draw."""
    assert timeline_shades([0, 0, 0]) == []
    assert timeline_shades([]) == []


def test_every_non_empty_bin_is_drawn_exactly_once():
    """Over 100 bins of varied counts, the runs of all shades cover exactly the non-empty bins."""
    bins = [(i * 7) % 11 for i in range(100)]
    covered: list[int] = []
    for shade in timeline_shades(bins):
        for run in shade.d.split("M")[1:]:
            start, rest = run.split(" 0h")
            covered.extend(range(int(start), int(start) + int(rest.split("v")[0])))
    assert sorted(covered) == [i for i, n in enumerate(bins) if n > 0]
