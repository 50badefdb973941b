"""MongoDB adapter (PyMongo's asyncio API): the prediction documents and per-frame records.

Two collections in ``runner_db``:

* ``runner_predictions``: one document per event, ``_id`` = event_id, carrying the status;
* ``runner_frame_results``: one document per (event_id, frame_id), ``_id`` = "event_id/frame_id",
  also under a unique (event_id, frame_id) index, holding the task's frame record and, once it
  arrives, the detector's result.

Counting distinct frames with a result (never ``$inc`` per message) keeps redelivery harmless.
Only plain MongoDB API is used, so production runs on MongoDB and tests on FerretDB.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import (
    AutoReconnect,
    BulkWriteError,
    ConnectionFailure,
    DuplicateKeyError,
    ExecutionTimeout,
    NetworkTimeout,
    OperationFailure,
    ServerSelectionTimeoutError,
)

from video_runner.domain.results import FrameResult
from video_runner.domain.status import Status, sources_of
from video_runner.errors import ConfigurationError, DependencyUnavailable

log = logging.getLogger(__name__)

_TRANSIENT = (
    AutoReconnect,
    ConnectionFailure,
    ExecutionTimeout,
    NetworkTimeout,
    ServerSelectionTimeoutError,
)
_PUBLISHED_WITH_RESULT: dict[str, Any] = {"object": {"$exists": True}, "result": {"$exists": True}}
_DUPLICATE_KEY = 11000
_BULK_SIZE = 500
_AUTH_FAILED = 18


def frame_doc_id(event_id: str, frame_id: int) -> str:
    """The natural key of a frame document; lookups by ``_id`` are the cheapest on any server."""
    return f"{event_id}/{frame_id}"


def frame_result_of(record: Mapping[str, Any]) -> FrameResult:
    """The stored result of a frame document (the task's timestamp wins over the result's)."""
    result = record["result"]
    timestamp = record.get("timestamp_ms", record.get("result_timestamp_ms"))
    return FrameResult(
        frame_id=int(record["frame_id"]),
        timestamp_ms=None if timestamp is None else int(timestamp),
        objects=list(result.get("objects") or []),
        error=result.get("error"),
        model=result.get("model"),
    )


def _now() -> datetime:
    return datetime.now(UTC)


def _unavailable(exc: Exception) -> DependencyUnavailable:
    return DependencyUnavailable("mongodb", f"{type(exc).__name__}: {exc}")


class MongoPredictionStore:
    """Implements ``ports.PredictionStore`` over two collections."""

    def __init__(
        self,
        client: AsyncMongoClient[dict[str, Any]],
        database: str,
        predictions: str,
        frames: str,
    ) -> None:
        self._client = client
        db = client[database]
        self._predictions: AsyncCollection[dict[str, Any]] = db[predictions]
        self._frames: AsyncCollection[dict[str, Any]] = db[frames]

    @classmethod
    def connect(
        cls, uri: str, database: str, predictions: str, frames: str, *, timeout_ms: int
    ) -> MongoPredictionStore:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            uri,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            socketTimeoutMS=max(timeout_ms * 6, 30_000),
            tz_aware=True,
            retryWrites=False,  # FerretDB has no sessions; our writes are idempotent anyway
        )
        return cls(client, database, predictions, frames)

    async def close(self) -> None:
        await self._client.close()

    async def ensure_indexes(self) -> None:
        try:
            await self._frames.create_index(
                [("event_id", ASCENDING), ("frame_id", ASCENDING)],
                unique=True,
                name="event_frame_unique",
            )
            await self._predictions.create_index(
                [("status", ASCENDING), ("updated_at", ASCENDING)], name="status_updated"
            )
        except OperationFailure as exc:
            raise _classify(exc) from exc
        except _TRANSIENT as exc:
            raise _unavailable(exc) from exc

    async def ping(self) -> None:
        try:
            await self._client.admin.command("ping")
        except OperationFailure as exc:
            raise _classify(exc) from exc
        except _TRANSIENT as exc:
            raise _unavailable(exc) from exc

    async def get(self, event_id: str) -> dict[str, Any] | None:
        try:
            return await self._predictions.find_one({"_id": event_id})
        except _TRANSIENT as exc:
            raise _unavailable(exc) from exc

    async def begin(self, event_id: str, fields: Mapping[str, Any]) -> bool:
        now = _now()
        try:
            # The status condition turns "already finished" into a failed upsert (duplicate _id)
            # instead of a silent overwrite: the one atomic check-and-create MongoDB offers.
            await self._predictions.update_one(
                {"_id": event_id, "status": Status.PROCESSING.value},
                {
                    "$set": {**fields, "updated_at": now},
                    "$setOnInsert": {
                        "status": Status.PROCESSING.value,
                        "created_at": now,
                        "frames_published": 0,
                        "results_received": 0,
                        "total_frames": None,
                        "reaper_attempts": 0,
                    },
                },
                upsert=True,
            )
        except DuplicateKeyError:
            return False
        except _TRANSIENT as exc:
            raise _unavailable(exc) from exc
        return True

    async def update_processing(self, event_id: str, fields: Mapping[str, Any]) -> bool:
        try:
            result = await self._predictions.update_one(
                {"_id": event_id, "status": Status.PROCESSING.value},
                {"$set": {**fields, "updated_at": _now()}},
            )
        except _TRANSIENT as exc:
            raise _unavailable(exc) from exc
        return result.matched_count == 1

    async def claim_reaping(self, event_id: str, attempts: int, now: datetime) -> bool:
        # A document written before the field existed counts as zero attempts.
        current: dict[str, Any] = {"$in": [0, None]} if attempts == 0 else {"$eq": attempts}
        try:
            result = await self._predictions.update_one(
                {"_id": event_id, "status": Status.PROCESSING.value, "reaper_attempts": current},
                {
                    "$set": {"last_reaped_at": now, "updated_at": now},
                    "$inc": {"reaper_attempts": 1},
                },
            )
        except _TRANSIENT as exc:
            raise _unavailable(exc) from exc
        return result.modified_count == 1

    async def record_frames(self, event_id: str, frames: Sequence[Mapping[str, Any]]) -> None:
        now = _now()
        documents = [
            {
                **frame,
                "_id": frame_doc_id(event_id, int(frame["frame_id"])),
                "event_id": event_id,
                "published_at": now,
            }
            for frame in frames
        ]
        # Bounded batches: one huge write would outlast the socket timeout on a slow server.
        for start in range(0, len(documents), _BULK_SIZE):
            await self._insert_records(documents[start : start + _BULK_SIZE])

    async def _insert_records(self, documents: list[dict[str, Any]]) -> None:
        """Insert frame records; a record that exists already is completed, never duplicated.

        Inserts, not upserts: a redo finds its records there with the same content, and plain
        inserts are what every server does fastest (FerretDB scans a collection per upsert).
        """
        try:
            await self._frames.insert_many(documents, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != _DUPLICATE_KEY for e in errors):
                raise _unavailable(exc) from exc
            await self._complete_records([documents[e["index"]] for e in errors])
        except _TRANSIENT as exc:
            raise _unavailable(exc) from exc

    async def _complete_records(self, documents: list[dict[str, Any]]) -> None:
        # Only a document an early (stray) result created lacks the record's fields.
        by_id = {doc["_id"]: doc for doc in documents}
        try:
            cursor = self._frames.find(
                {"_id": {"$in": list(by_id)}, "object": {"$exists": False}}, {"_id": 1}
            )
            for found in [doc async for doc in cursor]:
                record = {k: v for k, v in by_id[found["_id"]].items() if k != "_id"}
                await self._frames.update_one({"_id": found["_id"]}, {"$set": record})
        except _TRANSIENT as exc:
            raise _unavailable(exc) from exc

    async def save_result(self, event_id: str, result: FrameResult) -> bool:
        stored = {
            "objects": result.objects,
            "error": result.error,
            "model": result.model,
            "failed": result.error is not None,
        }
        fields: dict[str, Any] = {"result": stored, "result_at": _now()}
        if result.timestamp_ms is not None:
            fields["result_timestamp_ms"] = result.timestamp_ms
        try:
            update = await self._frames.update_one(
                {"_id": frame_doc_id(event_id, result.frame_id), "result": {"$exists": False}},
                {"$set": {**fields, "event_id": event_id, "frame_id": result.frame_id}},
                upsert=True,
            )
        except DuplicateKeyError:
            return (
                False  # the frame already has a result: first one wins, duplicates change nothing
            )
        except _TRANSIENT as exc:
            raise _unavailable(exc) from exc
        return update.upserted_id is not None or update.modified_count == 1

    async def count_results(self, event_id: str) -> tuple[int, int]:
        try:
            # Only frames whose task was published count: a stray result (another sampling, a
            # stale producer) must neither complete an event nor appear in its merge.
            received = await self._frames.count_documents(
                _PUBLISHED_WITH_RESULT | {"event_id": event_id}
            )
            failed = await self._frames.count_documents(
                _PUBLISHED_WITH_RESULT | {"event_id": event_id, "result.failed": True}
            )
        except _TRANSIENT as exc:
            raise _unavailable(exc) from exc
        return received, failed

    async def pending_frames(self, event_id: str) -> list[dict[str, Any]]:
        try:
            cursor = self._frames.find(
                {"event_id": event_id, "result": {"$exists": False}}, {"_id": 0}
            ).sort("frame_id", ASCENDING)
            return [doc async for doc in cursor]
        except _TRANSIENT as exc:
            raise _unavailable(exc) from exc

    async def iter_results(self, event_id: str) -> AsyncIterator[FrameResult]:
        try:
            cursor = self._frames.find(
                _PUBLISHED_WITH_RESULT | {"event_id": event_id}, {"_id": 0}
            ).sort("frame_id", ASCENDING)
            async for doc in cursor:
                yield frame_result_of(doc)
        except _TRANSIENT as exc:
            raise _unavailable(exc) from exc

    async def transition(
        self, event_id: str, target: Status, fields: Mapping[str, Any], *, owner: str | None = None
    ) -> bool:
        query: dict[str, Any] = {
            "_id": event_id,
            "status": {"$in": [s.value for s in sources_of(target)]},
        }
        if owner is not None:
            query["lease_owner"] = owner
        try:
            result = await self._predictions.update_one(
                query, {"$set": {**fields, "status": target.value, "updated_at": _now()}}
            )
        except _TRANSIENT as exc:
            raise _unavailable(exc) from exc
        return result.modified_count == 1

    async def find(
        self, status: Status, *, older_than: datetime | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"status": status.value}
        if older_than is not None:
            query["updated_at"] = {"$lt": older_than}
        try:
            cursor = self._predictions.find(query).sort("updated_at", ASCENDING).limit(limit)
            return [doc async for doc in cursor]
        except _TRANSIENT as exc:
            raise _unavailable(exc) from exc

    async def lease(
        self, status: Status, owner: str, until: datetime, now: datetime
    ) -> dict[str, Any] | None:
        try:
            return await self._predictions.find_one_and_update(
                {
                    "status": status.value,
                    "$or": [{"lease_until": None}, {"lease_until": {"$lt": now}}],
                },
                {"$set": {"lease_owner": owner, "lease_until": until}},
                sort=[("updated_at", ASCENDING)],
                return_document=ReturnDocument.AFTER,
            )
        except _TRANSIENT as exc:
            raise _unavailable(exc) from exc


def _classify(exc: OperationFailure) -> Exception:
    if exc.code == _AUTH_FAILED:
        return ConfigurationError(f"MongoDB refused the credentials: {exc}")
    return DependencyUnavailable("mongodb", str(exc))
