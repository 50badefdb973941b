"""A ready event's tracks, for the dashboard's timeline: read once from its final JSON.

Tracks come last in the final JSON (known only once every frame was linked), so they are read
by streaming the object to its end (``result_stream``), never by loading it. Only an event whose
document says it has tracks is read, and a ready event's result never changes, so a few of them
are kept.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from video_runner.domain.status import Status
from video_runner.ports import ObjectStream
from video_runner.services.result_stream import result_location, stream_items

#: Ready events whose tracks are kept in memory.
TRACKS_CACHE_EVENTS = 16


class TrackReader:
    """The tracks of ready events, from their final JSON in S3."""

    def __init__(self, objects: ObjectStream) -> None:
        self.objects = objects
        self._cache: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()

    async def tracks(self, document: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Every track of a ready event ([] for one not tracked, or not ready)."""
        if document.get("status") != Status.READY.value or not document.get("tracks"):
            return []
        event_id = str(document["_id"])
        cached = self._cache.get(event_id)
        if cached is not None:
            self._cache.move_to_end(event_id)
            return cached
        bucket, key = result_location(document)
        found = [item async for item in stream_items(self.objects, bucket, key, "tracks.item")]
        self._cache[event_id] = found
        while len(self._cache) > TRACKS_CACHE_EVENTS:
            self._cache.popitem(last=False)
        return found
