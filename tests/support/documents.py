"""The stored document of an event, for tests that check its exact shape on real servers."""

from __future__ import annotations

from typing import Any

from video_runner.ports import PredictionStore


async def stored_document(store: PredictionStore, event_id: str) -> dict[str, Any] | None:
    """The event's document as stored (``Prediction.as_document``), or None if unknown."""
    prediction = await store.get(event_id)
    return None if prediction is None else prediction.as_document()
