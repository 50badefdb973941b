"""Writes an event's merged JSON from the store, streaming, in two passes over sorted frames."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from video_runner.domain.results import MergedJson, merged_header
from video_runner.ports import PredictionStore


async def write_merged(store: PredictionStore, document: Mapping[str, Any], path: Path) -> int:
    """Write the final JSON of ``document``'s event to ``path``; returns the number of frames."""
    event_id = str(document["_id"])
    writer = MergedJson(merged_header(document))
    frames = 0
    with path.open("w", encoding="utf-8") as out:
        out.write(writer.head())
        async for result in store.iter_results(event_id):
            out.write(writer.frame(result))
            frames += 1
        out.write(writer.middle())
        async for result in store.iter_results(event_id):
            out.write(writer.legacy(result))
        out.write(writer.tail())
    return frames
