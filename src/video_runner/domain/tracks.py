"""Tracks: the same object followed across consecutive sampled frames, and what the final JSON
says about each one.

The matching itself is a tracker library's job, behind ``ports.BoxTracker``; this module keeps
what must not depend on it: the ids the final JSON shows (1, 2, 3, ... in order of first
appearance, whatever numbering the library uses) and the per-track summary. Both are pure
functions of the tracker's answers, so the same detections give the same tracks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: A box in pixels of its frame: x1, y1, x2, y2.
Box = tuple[float, float, float, float]


def wants_tracks(options: Mapping[str, Any], default: bool) -> bool:
    """Whether an event's objects are linked into tracks: its ``track`` option, else the
    service's ``TRACK_DEFAULT``."""
    asked = options.get("track")
    return default if asked is None else bool(asked)


def trackable(obj: Mapping[str, Any]) -> Box | None:
    """The box of an object a tracker can follow, or None (a box of no area has no overlap)."""
    try:
        x1, y1, x2, y2 = (float(v) for v in obj["box"])
    except (KeyError, TypeError, ValueError):
        return None
    if x2 <= x1 or y2 <= y1:
        return None
    return (x1, y1, x2, y2)


@dataclass(slots=True)
class TrackSummary:
    """One track over the whole video."""

    track_id: int
    cls: str
    first_frame_id: int
    last_frame_id: int
    first_ms: int | None
    last_ms: int | None
    frames: int
    best_conf: float

    def seen(self, frame_id: int, timestamp_ms: int | None, conf: float) -> None:
        if frame_id != self.last_frame_id:
            self.frames += 1
        self.last_frame_id = frame_id
        self.last_ms = timestamp_ms
        self.best_conf = max(self.best_conf, conf)

    def as_dict(self) -> dict[str, Any]:
        return {
            "track_id": self.track_id,
            "class": self.cls,
            "first_frame_id": self.first_frame_id,
            "last_frame_id": self.last_frame_id,
            "first_ms": self.first_ms,
            "last_ms": self.last_ms,
            "frames": self.frames,
            "best_conf": self.best_conf,
        }


class TrackBook:
    """Turns the tracker's own ids into the final JSON's and keeps each track's summary.

    Frames must come in ascending ``frame_id`` (the merge's order). A track id is given the
    first time the tracker names a track, numbered from 1, so the numbering depends only on
    the order of frames and of objects within a frame.
    """

    def __init__(self) -> None:
        self._ids: dict[int, int] = {}
        self._tracks: dict[int, TrackSummary] = {}

    def label(
        self,
        frame_id: int,
        timestamp_ms: int | None,
        objects: Sequence[Mapping[str, Any]],
        local_ids: Sequence[int | None],
    ) -> list[dict[str, Any]]:
        """``objects`` with the ``track_id`` of each tracked one (others as they were)."""
        if len(objects) != len(local_ids):
            raise ValueError(f"{len(local_ids)} tracker answers for {len(objects)} objects")
        labelled: list[dict[str, Any]] = []
        for obj, local in zip(objects, local_ids, strict=True):
            item = dict(obj)
            item.pop("track_id", None)  # a result re-linked starts from the detector's objects
            if local is not None:
                track_id = self._ids.setdefault(local, len(self._ids) + 1)
                item["track_id"] = track_id
                self._note(track_id, frame_id, timestamp_ms, item)
            labelled.append(item)
        return labelled

    def _note(
        self, track_id: int, frame_id: int, timestamp_ms: int | None, obj: Mapping[str, Any]
    ) -> None:
        conf = float(obj.get("conf") or 0.0)
        summary = self._tracks.get(track_id)
        if summary is None:
            self._tracks[track_id] = TrackSummary(
                track_id=track_id,
                cls=str(obj.get("class", "?")),
                first_frame_id=frame_id,
                last_frame_id=frame_id,
                first_ms=timestamp_ms,
                last_ms=timestamp_ms,
                frames=1,
                best_conf=conf,
            )
        else:
            summary.seen(frame_id, timestamp_ms, conf)

    def summaries(self) -> list[dict[str, Any]]:
        """Every track, by track id: the final JSON's ``tracks``."""
        return [self._tracks[t].as_dict() for t in sorted(self._tracks)]

    def __len__(self) -> int:
        return len(self._tracks)


def track_rows(
    tracks: Sequence[Mapping[str, Any]], span_frames: int | None, limit: int
) -> list[dict[str, Any]]:
    """The ``limit`` longest tracks (most frames seen, then by id) as timeline rows: where each
    starts and ends as fractions of the video's ``span_frames`` (its ``frame_count``; a track
    beyond it, in a video that under-declared its length, stretches the span)."""
    span = max([int(span_frames or 0), 1, *(int(t["last_frame_id"]) + 1 for t in tracks)])
    longest = sorted(tracks, key=lambda t: (-int(t.get("frames") or 0), int(t["track_id"])))
    rows = []
    for track in sorted(longest[: max(limit, 0)], key=lambda t: int(t["track_id"])):
        first, last = int(track["first_frame_id"]), int(track["last_frame_id"])
        start = min(max(first, 0) / span, 1.0)
        end = min(max(last + 1, first + 1) / span, 1.0)
        rows.append(
            {
                "track_id": int(track["track_id"]),
                "class": str(track.get("class", "?")),
                "start": round(start, 4),
                "width": round(max(end - start, 0.002), 4),
                "frames": int(track.get("frames") or 0),
                "first_frame_id": first,
                "last_frame_id": last,
            }
        )
    return rows
