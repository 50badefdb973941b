"""The collections of one store and what every part of it shares: reads and writes by ``_id``,
PyMongo's errors classified once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError

from video_runner.adapters.error_classes import classify_mongo, is_duplicate_key
from video_runner.adapters.mongo.documents import prediction_of, utc_now
from video_runner.domain.prediction import Prediction


def raise_classified(exc: PyMongoError) -> NoReturn:
    classified = classify_mongo(exc)
    if classified is exc:
        raise exc
    raise classified from exc


class Collections:
    """The six collections, the client that owns them, and the calls every part uses."""

    def __init__(
        self,
        client: AsyncMongoClient[dict[str, Any]],
        database: str,
        collections: Mapping[str, str],
    ) -> None:
        self._client = client
        db = client[database]
        self._events: AsyncCollection[dict[str, Any]] = db[collections["events"]]
        self._task_pages: AsyncCollection[dict[str, Any]] = db[collections["task_pages"]]
        self._results: AsyncCollection[dict[str, Any]] = db[collections["results"]]
        self._progress: AsyncCollection[dict[str, Any]] = db[collections["progress"]]
        self._claims: AsyncCollection[dict[str, Any]] = db[collections["claims"]]
        self._notices: AsyncCollection[dict[str, Any]] = db[
            collections.get("notices", "runner_notices")
        ]

    async def close(self) -> None:
        await self._client.close()

    async def ensure_indexes(self) -> None:
        """Indexes for the repair scans (on MongoDB; FerretDB's SQLite backend ignores them)."""
        try:
            await self._events.create_index(
                [("status", ASCENDING), ("_id", ASCENDING)], name="status_id"
            )
            await self._results.create_index(
                [("event_id", ASCENDING), ("frame_id", ASCENDING)], name="event_frame"
            )
        except PyMongoError as exc:
            raise_classified(exc)

    async def ping(self) -> None:
        try:
            await self._client.admin.command("ping")
        except PyMongoError as exc:
            raise_classified(exc)

    async def get(self, event_id: str) -> Prediction | None:
        try:
            document = await self._events.find_one({"_id": event_id})
        except PyMongoError as exc:
            raise_classified(exc)
        return None if document is None else prediction_of(document)

    async def _set(self, event_id: str, fields: Mapping[str, Any]) -> None:
        try:
            await self._events.update_one(
                {"_id": event_id}, {"$set": {**fields, "updated_at": utc_now()}}
            )
        except PyMongoError as exc:
            raise_classified(exc)

    async def _insert_once(
        self, collection: AsyncCollection[dict[str, Any]], document: Mapping[str, Any]
    ) -> bool:
        try:
            await collection.insert_one(dict(document))
        except PyMongoError as exc:
            if is_duplicate_key(exc):
                return False
            raise_classified(exc)
        return True
