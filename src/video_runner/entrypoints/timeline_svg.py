"""A class's timeline as a few SVG paths: one per shade, adjacent bins of a shade merged.

A rectangle per bin made the video page grow with classes x bins (20 x 100 bins of about 110
bytes each); a path per shade is a few bytes per run of bins, so the page stays small.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

#: Shades a bin is drawn in: its count against the class's peak, rounded up to a quarter.
SHADES = 4


@dataclass(frozen=True, slots=True)
class Shade:
    """The bins of one opacity, as an SVG path ``d`` in a ``viewBox="0 0 len(bins) 1"``."""

    opacity: str
    d: str


def timeline_shades(bins: Sequence[int]) -> list[Shade]:
    """The non-empty bins of ``bins`` grouped by shade, lightest first; empty bins draw nothing."""
    peak = max(bins, default=0)
    if peak <= 0:
        return []
    runs: dict[int, list[str]] = {}
    start = 0
    while start < len(bins):
        level = _level(bins[start], peak)
        end = start + 1
        while end < len(bins) and _level(bins[end], peak) == level:
            end += 1
        if level:
            runs.setdefault(level, []).append(f"M{start} 0h{end - start}v1H{start}z")
        start = end
    return [
        Shade(f"{0.25 + 0.75 * level / SHADES:.2f}", "".join(runs[level])) for level in sorted(runs)
    ]


def _level(count: int, peak: int) -> int:
    return -(-SHADES * count // peak) if count > 0 else 0
