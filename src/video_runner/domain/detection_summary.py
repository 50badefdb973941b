"""What a person scans first: detections per class, and where along the video they happen."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

#: One sampled frame's detections: its frame id and its objects (``{"class", "box", "conf"}``).
FrameObjects = tuple[int, Sequence[Mapping[str, Any]]]


def class_counts(frames: Iterable[FrameObjects]) -> dict[str, int]:
    """Objects per class over all frames, most frequent first (ties by name)."""
    counts = Counter(str(obj.get("class", "?")) for _, objects in frames for obj in objects)
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def count_pairs(counts: Mapping[str, int]) -> list[dict[str, Any]]:
    """Counts per class as stored: a list of ``{"class", "count"}``, never class names as
    document keys (a name may hold ``.`` or start with ``$``, which a store refuses as a key)."""
    return [{"class": name, "count": count} for name, count in counts.items()]


def counts_of(stored: object) -> dict[str, int]:
    """Counts per class from their stored form (pairs; a mapping in older documents)."""
    if isinstance(stored, Mapping):
        return {str(name): int(count) for name, count in stored.items()}
    if isinstance(stored, list):
        return {
            str(pair["class"]): int(pair["count"]) for pair in stored if isinstance(pair, Mapping)
        }
    return {}


def class_timeline(
    frames: Iterable[FrameObjects], span_frames: int, bins: int
) -> dict[str, list[int]]:
    """Per class, how many objects fall in each of ``bins`` equal slices of the video.

    ``span_frames`` is the video's length in source frames (its ``frame_count``); a frame id
    beyond it (a container that under-declared its length) lands in the last slice.
    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    span = max(span_frames, 1)
    timeline: dict[str, list[int]] = {}
    for frame_id, objects in frames:
        slot = min(max(frame_id, 0) * bins // span, bins - 1)
        for obj in objects:
            row = timeline.setdefault(str(obj.get("class", "?")), [0] * bins)
            row[slot] += 1
    return dict(sorted(timeline.items(), key=lambda item: (-sum(item[1]), item[0])))


def spread(items: Sequence[int], limit: int) -> list[int]:
    """At most ``limit`` items picked evenly from ``items``, first and last included."""
    if limit < 1:
        return []
    if len(items) <= limit:
        return list(items)
    if limit == 1:
        return [items[0]]
    step = (len(items) - 1) / (limit - 1)
    return [items[round(i * step)] for i in range(limit)]
