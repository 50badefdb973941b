"""Versions of a result: the same stored frames run again through another detector.

Version 1 is the event as it was first processed. A re-run is an event of its own, whose id is
derived from the original's (``clip-42--v2``), so every stage (tasks, results, counters,
completion, the final JSON, its notice) works on it as on any event while the original's
result stays where it was. Its frames are the original's (``frames_of``): nothing is
downloaded or decoded again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

#: What separates an event id from its version number; event ids holding it are reserved.
VERSION_MARK = "--v"
#: The version number of an event's first re-run (its first run is version 1).
FIRST_RERUN = 2
#: Versions one event may have: far more than anyone re-runs, and a bound on the claims read.
MAX_VERSIONS = 1000
#: Event ids are at most this long (the allowlist); a version's id fits in it too.
_MAX_ID = 128
_DIGEST = 16


def version_event_id(event_id: str, version: int) -> str:
    """The event id of ``event_id``'s ``version`` (2 or more): ``{event_id}--v{version}``, or
    for an id too long for the suffix, its head and a digest of the whole, so it stays unique
    and within the allowlist."""
    if not FIRST_RERUN <= version <= MAX_VERSIONS:
        raise ValueError(f"version must be from {FIRST_RERUN} to {MAX_VERSIONS}, got {version}")
    suffix = f"{VERSION_MARK}{version}"
    if len(event_id) + len(suffix) <= _MAX_ID:
        return event_id + suffix
    digest = hashlib.sha256(event_id.encode()).hexdigest()[:_DIGEST]
    return f"{event_id[: _MAX_ID - len(suffix) - _DIGEST - 1]}-{digest}{suffix}"


def root_of(document: Mapping[str, Any]) -> str:
    """The event whose frames a document's result was made from: itself, or what it is a
    version of."""
    return str(document.get("version_of") or document["_id"])


def version_claim(version: int) -> str:
    """The one-time claim that gives ``version`` of an event to one re-run request."""
    return f"version-{version}"


def version_fields(
    original: Mapping[str, Any],
    *,
    version: int,
    detector: str | None,
    request_id: str,
    results_partitions: int,
) -> dict[str, Any]:
    """The first fields of a version's document: the original's source, video, sampling,
    options and preprocessing (so its results are judged and rendered alike), and what makes
    it a version."""
    fields = {
        name: original.get(name)
        for name in ("source", "video", "sampling", "options", "preprocessing")
    }
    fields["options"] = dict(original.get("options") or {})
    fields.update(
        {
            "version": version,
            "version_of": root_of(original),
            "detector": detector,
            "request_id": request_id,
            "results_partitions": results_partitions,
            "error": None,
        }
    )
    return fields
