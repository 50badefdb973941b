"""Identifiers that become S3 keys and document ids: a strict allowlist, checked before any use."""

from __future__ import annotations

import re

_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


def is_valid_id(value: str) -> bool:
    """Letters, digits, ``-`` and ``_``; 1 to 128 characters. ``../`` and the like never pass."""
    return _ID.fullmatch(value) is not None


def frame_key(event_id: str, frame_id: int) -> str:
    """Where a frame's JPEG lives in the frames bucket (deterministic, so a redo overwrites)."""
    return f"frames/{event_id}/{frame_id}.jpg"


def task_key(event_id: str, frame_id: int) -> str:
    """The Kafka key of a frame's task and result: one video spreads over every partition."""
    return f"{event_id}/{frame_id}"


def video_key(video_id: str) -> str:
    """Where a submitted video lives in the videos bucket."""
    return f"input/{video_id}.mp4"


def detection_key(event_id: str) -> str:
    """Where the outbox-S3 worker writes the final JSON in the source bucket."""
    return f"detection/{event_id}.json"
