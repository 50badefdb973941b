"""How far an event is, as a person wants to read it (``status``, ``/predictions/{id}``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from video_runner.domain.status import Status


def expected_frames(document: Mapping[str, Any]) -> int | None:
    """Sampled frames: exact once extraction finished, estimated from the container before."""
    total = document.get("total_frames")
    if total is not None:
        return int(total)
    planned = document.get("segments")
    if isinstance(planned, Mapping) and planned.get("frames") is not None:
        return int(planned["frames"])  # a video cut into segments: exact from its index
    frame_count = (document.get("video") or {}).get("frame_count")
    every_n = (document.get("sampling") or {}).get("every_n")
    if frame_count and every_n:
        return math.ceil(int(frame_count) / int(every_n))
    return None


def progress_percent(document: Mapping[str, Any]) -> float:
    """Half for frames published, half for results received; 100 once predictable."""
    status = Status(document["status"])
    if status in {Status.PREDICTABLE, Status.READY}:
        return 100.0
    expected = expected_frames(document)
    if not expected:
        return 0.0
    published = min(int(document.get("frames_published") or 0), expected)
    planned = document.get("segments")
    if isinstance(planned, Mapping) and planned.get("count") and not published:
        # Segment runners do not count frames on the document: the segments done do.
        published = expected * int(planned.get("done", 0)) // int(planned["count"])
    received = min(int(document.get("results_received") or 0), expected)
    return round(100.0 * (published + received) / (2 * expected), 1)


def status_view(document: Mapping[str, Any]) -> dict[str, Any]:
    """The public view of a prediction document."""

    def when(key: str) -> str | None:
        value = document.get(key)
        return None if value is None else value.isoformat()

    view = {
        "event_id": document["_id"],
        "status": document["status"],
        "progress_percent": progress_percent(document),
        "frames_published": int(document.get("frames_published") or 0),
        "results_received": int(document.get("results_received") or 0),
        "total_frames": document.get("total_frames"),
        "expected_frames": expected_frames(document),
        "failed_frames": int(document.get("failed_frames") or 0),
        "video": document.get("video"),
        "source": document.get("source"),
        "error": document.get("error"),
        "output_s3": document.get("output_s3"),
        "created_at": when("created_at"),
        "updated_at": when("updated_at"),
        "ready_at": when("ready_at"),
    }
    if document.get("segments"):
        # A video cut into segments: how many, how many frames, and (while processing) done.
        view["segments"] = document["segments"]
    return view
