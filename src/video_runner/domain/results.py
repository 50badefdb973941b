"""Per-frame results, the completion rule, and the merged result JSON.

The merged JSON is rendered as a stream of chunks from frames already sorted by ``frame_id``, so
a three-hour video (54,000 frames, ~60 MB of JSON) never has to be one object in memory nor one
MongoDB document (16 MB limit); see docs/contracts.md, "Where the merged result lives".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# One encoder for every element: building one per call costs more than encoding a frame.
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


@dataclass(frozen=True, slots=True)
class FrameResult:
    """The detections of one frame, or the detector's error for it."""

    frame_id: int
    timestamp_ms: int | None
    objects: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class ResultCounts:
    """Distinct frames with a stored result, how many of them are detector errors, and when the
    last of them was counted (None when nothing was)."""

    stored: int = 0
    failed: int = 0
    last_at: datetime | None = None

    def __add__(self, other: ResultCounts) -> ResultCounts:
        stamps = [t for t in (self.last_at, other.last_at) if t is not None]
        return ResultCounts(
            self.stored + other.stored, self.failed + other.failed, max(stamps, default=None)
        )


@dataclass(frozen=True, slots=True)
class Completion:
    """What the runner decides once it has counted an event's distinct results."""

    complete: bool
    failed_frames: int
    too_many_failures: bool


def judge_completion(
    total_frames: int | None, received: int, failed: int, max_failed_ratio: float
) -> Completion:
    """Complete when every sampled frame has exactly one stored result.

    Counting distinct stored results (never incrementing a counter per message) is what makes a
    redelivered result harmless. A video fails only when detector errors exceed the ratio.
    """
    if total_frames is None or received < total_frames:
        return Completion(complete=False, failed_frames=failed, too_many_failures=False)
    ratio = failed / total_frames if total_frames else 0.0
    return Completion(
        complete=True, failed_frames=failed, too_many_failures=ratio > max_failed_ratio
    )


def is_expected_frame(frame_id: int, every_n: int | None, total_frames: int | None) -> bool:
    """Whether the sampling of an event can have selected ``frame_id``.

    Only such results are stored and counted: a stray result (another sampling, a stale or
    foreign producer) must neither complete an event early nor appear in its merge.
    """
    if frame_id < 0:
        return False
    if every_n is None or every_n < 1:
        return True
    if frame_id % every_n:
        return False
    return total_frames is None or frame_id // every_n < total_frames


def is_expected_under(
    sampling: Mapping[str, Any] | None, frame_id: int, total_frames: int | None
) -> bool:
    """:func:`is_expected_frame` for an event's stored ``sampling``, whatever its form.

    A plan by time (``fps``) may select any frame; within a range (``start_ms``/``end_ms``) the
    ids are global, so only ``every_n``'s divisibility still holds, not the bound by count.
    """
    sampling = sampling or {}
    every_n = sampling.get("every_n")
    if sampling.get("fps") is not None:
        return frame_id >= 0
    if sampling.get("start_ms") is not None or sampling.get("end_ms") is not None:
        return is_expected_frame(frame_id, every_n, None)
    return is_expected_frame(frame_id, every_n, total_frames)


def frame_entry(result: FrameResult) -> dict[str, Any]:
    """One element of the merged ``frames`` list."""
    entry: dict[str, Any] = {
        "frame_id": result.frame_id,
        "timestamp_ms": result.timestamp_ms,
        "objects": result.objects,
    }
    if result.error is not None:
        entry["error"] = result.error
    return entry


class MergedJson:
    """Renders the final JSON in pieces, so it can be streamed in two passes over sorted frames.

    The document is ``header`` (event_id, status, video, sampling, preprocessing, ...) plus
    ``frames``, its older twin ``prediction`` ({"frame", "objects"}) that earlier consumers
    read, and ``models``: the detectors (name@version) that answered, known only once every
    frame was seen, hence last. Writing ``frames`` in a first pass and ``prediction`` in a second
    keeps memory flat for any length of video: a caller streams each pass from its store, sorted
    by ``frame_id``.
    """

    def __init__(self, header: Mapping[str, Any]) -> None:
        self._header = dict(header)
        self._last: int | None = None
        self._count = 0
        self._models: set[str] = set()

    def head(self) -> str:
        text = json.dumps(self._header, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        return text[:-1] + (',"frames":[' if self._header else '"frames":[')

    def frame(self, result: FrameResult) -> str:
        """The ``frames`` element of the next frame; raises if frames come out of order."""
        if result.model:
            self._models.add(result.model)
        return self._element(result, frame_entry(result))

    @property
    def models(self) -> list[str]:
        """The distinct detectors of the frames written so far, sorted."""
        return sorted(self._models)

    def middle(self) -> str:
        self._last = None
        self._count = 0
        return '],"prediction":['

    def legacy(self, result: FrameResult) -> str:
        """The ``prediction`` element of the next frame (second pass)."""
        return self._element(result, {"frame": result.frame_id, "objects": result.objects})

    def _element(self, result: FrameResult, entry: Mapping[str, Any]) -> str:
        if self._last is not None and result.frame_id <= self._last:
            raise ValueError(f"frames out of order: {result.frame_id} after {self._last}")
        self._last = result.frame_id
        self._count += 1
        comma = "," if self._count > 1 else ""
        return comma + _COMPACT.encode(entry)

    def tail(self, extra: Mapping[str, Any] | None = None) -> str:
        """The end of the document, naming the models of the frames this writer wrote, then
        ``extra`` fields known only at the end (a tracked video's ``tracks``)."""
        fields = "".join(
            f",{_COMPACT.encode(name)}:{_COMPACT.encode(value)}"
            for name, value in (extra or {}).items()
        )
        return '],"models":' + _COMPACT.encode(self.models) + fields + "}"


def render_merged(
    header: Mapping[str, Any],
    frames: Sequence[FrameResult],
    extra: Mapping[str, Any] | None = None,
) -> Iterator[str]:
    """The final JSON as text chunks, from frames held in memory and sorted by ``frame_id``."""
    writer = MergedJson(header)
    yield writer.head()
    yield from (writer.frame(result) for result in frames)
    yield writer.middle()
    yield from (writer.legacy(result) for result in frames)
    yield writer.tail(extra)


def merged_document(
    header: Mapping[str, Any],
    frames: Iterable[FrameResult],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The merged JSON as a dict (small videos, tests and the one-process ``process`` command)."""
    text = "".join(render_merged(header, sorted_frames(frames), extra))
    parsed: dict[str, Any] = json.loads(text)
    return parsed


def sorted_frames(frames: Iterable[FrameResult]) -> list[FrameResult]:
    return sorted(frames, key=lambda r: r.frame_id)


def merged_header(document: Mapping[str, Any]) -> dict[str, Any]:
    """The top of the final JSON, from a prediction document (or its equivalent in memory).

    ``options`` (an event's own, as given) appear only when the event had some.
    """
    header = {
        "event_id": document["_id"],
        "status": "predictable",
        "source": document.get("source"),
        "video": document.get("video"),
        "sampling": document.get("sampling"),
        "preprocessing": document.get("preprocessing"),
        "total_frames": document.get("total_frames"),
        "failed_frames": document.get("failed_frames", 0),
    }
    if document.get("options"):
        header["options"] = document["options"]
    # A re-run (another detector on the stored frames) names what it is a version of.
    for name in ("version", "version_of", "detector"):
        if document.get(name) is not None:
            header[name] = document[name]
    return header
