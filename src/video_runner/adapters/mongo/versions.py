"""Re-runs and frames retention in the store: claims that hold their taker, and the scan of
events whose frames the retention may delete. Same collections as the rest of the store."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.errors import PyMongoError

from video_runner.adapters.mongo.collections import Collections, raise_classified
from video_runner.adapters.mongo.documents import claim_doc_id, prediction_of, utc_now
from video_runner.domain.prediction import Prediction
from video_runner.domain.status import Status


class VersionRecords(Collections):
    """Implements ``ports.VersionStore``."""

    async def claim_holding(
        self, event_id: str, name: str, fields: Mapping[str, Any]
    ) -> dict[str, Any]:
        document = {
            "_id": claim_doc_id(event_id, name),
            "event_id": event_id,
            "at": utc_now(),
            "fields": dict(fields),
        }
        if await self._insert_once(self._claims, document):
            return dict(fields)
        try:
            holder = await self._claims.find_one({"_id": document["_id"]})
        except PyMongoError as exc:
            raise_classified(exc)
        # A claim taken by ``claim`` holds no fields: it is nobody's re-run.
        return dict((holder or {}).get("fields") or {})

    async def frames_kept(
        self, before: datetime, *, after_id: str | None = None, limit: int = 100
    ) -> list[Prediction]:
        query: dict[str, Any] = {
            "status": {"$in": [Status.READY.value, Status.FAILED.value]},
            "updated_at": {"$lt": before},
            "frames_deleted_at": {"$exists": False},
            "version_of": {"$exists": False},
        }
        if after_id is not None:
            query["_id"] = {"$gt": after_id}
        try:
            cursor = self._events.find(query).sort("_id", ASCENDING).limit(limit)
            return [prediction_of(doc) async for doc in cursor]
        except PyMongoError as exc:
            raise_classified(exc)
