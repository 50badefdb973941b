"""MongoDB adapter (PyMongo's asyncio API): events, task chunks, results, progress and claims.

Six collections in ``runner_db`` (docs/contracts.md, "Documents"):

* ``runner_predictions``: one document per event, ``_id`` = event_id, carrying the status;
* ``runner_task_chunks``: ``{event_id}/c{k}``, the records of up to 64 published frame tasks;
* ``runner_frame_results``: ``{event_id}/{frame_id}``, a frame's result; the first insert wins;
* ``runner_progress``: ``{event_id}/p{partition}``, results stored per results partition;
* ``runner_claims``: ``{event_id}/{name}``, one-time claims: who moved the event, who reaped;
  a terminal move's claim holds its completion notice;
* ``runner_notices``: ``{event_id}/{ready|failed}``, notices not yet fully delivered (small).

Every call on the hot paths names documents by ``_id`` only, and every write of the results path
is an insert, a bulk insert or an ``$inc`` by ``_id``: its cost stays flat however many other
documents the collections hold, on MongoDB and on FerretDB (docs/decisions/0006). Scans are left
to ``find`` and ``recount``, which only repair loops call. Only plain MongoDB API is used.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

from pymongo import ASCENDING, AsyncMongoClient, DeleteOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, PyMongoError

from video_runner.adapters.error_classes import classify_mongo, is_duplicate_key
from video_runner.contracts.notice import notice_for, notice_json
from video_runner.domain.chunks import TaskChunk, TaskRecord
from video_runner.domain.results import FrameResult, ResultCounts
from video_runner.domain.status import Status, can_move, claim_name

log = logging.getLogger(__name__)

#: Bounded bulk writes: one huge write would outlast the socket timeout on a slow server.
_BULK_SIZE = 1000
#: Lookups by ``_id`` in flight at once (well under PyMongo's default pool of 100 connections).
_LOOKUP_WINDOW = 32


def result_doc_id(event_id: str, frame_id: int) -> str:
    """The natural key of a frame's result."""
    return f"{event_id}/{frame_id}"


def chunk_doc_id(event_id: str, index: int) -> str:
    return f"{event_id}/c{index}"


def progress_doc_id(event_id: str, partition: int) -> str:
    return f"{event_id}/p{partition}"


def claim_doc_id(event_id: str, name: str) -> str:
    return f"{event_id}/{name}"


def frame_result_of(document: Mapping[str, Any]) -> FrameResult:
    """The ``FrameResult`` of a stored result document."""
    timestamp = document.get("timestamp_ms")
    return FrameResult(
        frame_id=int(document["frame_id"]),
        timestamp_ms=None if timestamp is None else int(timestamp),
        objects=list(document.get("objects") or []),
        error=document.get("error"),
        model=document.get("model"),
    )


def result_document(event_id: str, result: FrameResult, now: datetime) -> dict[str, Any]:
    return {
        "_id": result_doc_id(event_id, result.frame_id),
        "event_id": event_id,
        "frame_id": result.frame_id,
        "timestamp_ms": result.timestamp_ms,
        "objects": result.objects,
        "error": result.error,
        "model": result.model,
        "failed": result.error is not None,
        "stored_at": now,
    }


def chunk_document(event_id: str, chunk: TaskChunk, now: datetime) -> dict[str, Any]:
    return {
        "_id": chunk_doc_id(event_id, chunk.index),
        "event_id": event_id,
        "chunk": chunk.index,
        "bucket": chunk.bucket,
        "tasks": [task.as_dict() for task in chunk.tasks],
        "written_at": now,
    }


def chunk_of_document(document: Mapping[str, Any]) -> TaskChunk:
    return TaskChunk(
        index=int(document["chunk"]),
        bucket=str(document["bucket"]),
        tasks=tuple(TaskRecord.from_dict(task) for task in document["tasks"]),
    )


def new_event_document(event_id: str, fields: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The shape of a prediction document when its event is first accepted."""
    return {
        "_id": event_id,
        "status": Status.PROCESSING.value,
        "created_at": now,
        "updated_at": now,
        "frames_published": 0,
        "total_frames": None,
        **fields,
    }


def pending_notice_document(
    notice_id: str, event_id: str, status: Status, callback_url: str | None, now: datetime
) -> dict[str, Any]:
    """A notice in flight: published to ``prediction_events`` yet or not, its webhook done or not.

    Deleted once both are done; the sweep reads these (and only these) to finish what a crash
    interrupted.
    """
    return {
        "_id": notice_id,
        "event_id": event_id,
        "status": status.value,
        "at": now,
        "attempts": 0,
        "published": False,
        "webhook_url": callback_url,
        "webhook_done": callback_url is None,
        "webhook_attempts": 0,
    }


def _callback_url(document: Mapping[str, Any]) -> str | None:
    url = (document.get("options") or {}).get("callback_url")
    return url if isinstance(url, str) and url else None


def _now() -> datetime:
    return datetime.now(UTC)


def _raise(exc: PyMongoError) -> NoReturn:
    classified = classify_mongo(exc)
    if classified is exc:
        raise exc
    raise classified from exc


class MongoPredictionStore:
    """Implements ``ports.PredictionStore``."""

    def __init__(
        self,
        client: AsyncMongoClient[dict[str, Any]],
        database: str,
        collections: Mapping[str, str],
    ) -> None:
        self._client = client
        db = client[database]
        self._events: AsyncCollection[dict[str, Any]] = db[collections["events"]]
        self._chunks: AsyncCollection[dict[str, Any]] = db[collections["chunks"]]
        self._results: AsyncCollection[dict[str, Any]] = db[collections["results"]]
        self._progress: AsyncCollection[dict[str, Any]] = db[collections["progress"]]
        self._claims: AsyncCollection[dict[str, Any]] = db[collections["claims"]]
        self._notices: AsyncCollection[dict[str, Any]] = db[
            collections.get("notices", "runner_notices")
        ]

    @classmethod
    def connect(
        cls, uri: str, database: str, collections: Mapping[str, str], *, timeout_ms: int
    ) -> MongoPredictionStore:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            uri,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            socketTimeoutMS=max(timeout_ms * 6, 30_000),
            tz_aware=True,
            retryWrites=False,  # FerretDB has no sessions; our writes are idempotent anyway
        )
        return cls(client, database, collections)

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
            _raise(exc)

    async def ping(self) -> None:
        try:
            await self._client.admin.command("ping")
        except PyMongoError as exc:
            _raise(exc)

    # -- events -----------------------------------------------------------------------------

    async def get(self, event_id: str) -> dict[str, Any] | None:
        try:
            return await self._events.find_one({"_id": event_id})
        except PyMongoError as exc:
            _raise(exc)

    async def begin(self, event_id: str, fields: Mapping[str, Any]) -> bool:
        now = _now()
        try:
            await self._events.insert_one(new_event_document(event_id, fields, now))
        except PyMongoError as exc:
            if not is_duplicate_key(exc):
                _raise(exc)
            # Seen before: a redelivery. Redo it only while its video path is unfinished.
            return await self.update_processing(event_id, fields, only_unpublished=True)
        return True

    async def update_processing(
        self, event_id: str, fields: Mapping[str, Any], *, only_unpublished: bool = False
    ) -> bool:
        """``$set`` by ``_id`` after reading the status: the read is by ``_id`` too.

        Only the video path writes a processing document before it sets ``total_frames``, so
        the read and the write cannot be split by another writer of these fields.
        """
        document = await self.get(event_id)
        if document is None or document.get("status") != Status.PROCESSING.value:
            return False
        if only_unpublished and document.get("total_frames") is not None:
            return False
        await self._set(event_id, fields)
        return True

    async def annotate(self, event_id: str, fields: Mapping[str, Any]) -> None:
        await self._set(event_id, fields)

    async def _set(self, event_id: str, fields: Mapping[str, Any]) -> None:
        try:
            await self._events.update_one(
                {"_id": event_id}, {"$set": {**fields, "updated_at": _now()}}
            )
        except PyMongoError as exc:
            _raise(exc)

    async def transition(self, event_id: str, target: Status, fields: Mapping[str, Any]) -> bool:
        """Claim the move, then apply it by ``_id``.

        The claim (a unique insert) is what makes one caller win even where conditional updates
        are not atomic (FerretDB). It holds the fields, so if its winner dies before applying
        them, the next caller that tries any move of the same kind applies the winner's move.
        A terminal move's claim also holds its completion notice, unpublished (outbox-style:
        the notice exists exactly when the move was won), and a pending marker is written to
        ``runner_notices`` before the claim, so the sweep finds a notice whose winner died
        without a scan of the claims (docs/decisions/0008).
        """
        document = await self.get(event_id)
        if document is None or not can_move(Status(document["status"]), target):
            return False
        name = claim_name(target)
        applied = {**fields, "status": target.value}
        now = _now()
        claim: dict[str, Any] = {
            "_id": claim_doc_id(event_id, name),
            "event_id": event_id,
            "fields": applied,
            "at": now,
        }
        notice = notice_for(document, target, applied)
        if notice is not None:
            claim["notice"] = notice_json(notice)
            claim["notice_id"] = notice.notice_id
            claim["callback_url"] = _callback_url(document)
            await self._insert_once(
                self._notices,
                pending_notice_document(
                    notice.notice_id, event_id, target, _callback_url(document), now
                ),
            )
        try:
            await self._claims.insert_one(claim)
        except PyMongoError as exc:
            if not is_duplicate_key(exc):
                _raise(exc)
            winner = await self._claims.find_one({"_id": claim_doc_id(event_id, name)})
            if winner is None:  # pragma: no cover - claims are never deleted
                return False
            # The winner's move may not be applied yet: apply it (the same values again).
            await self._set(event_id, winner["fields"])
            return False
        await self._set(event_id, applied)
        return True

    async def _insert_once(
        self, collection: AsyncCollection[dict[str, Any]], document: Mapping[str, Any]
    ) -> bool:
        try:
            await collection.insert_one(dict(document))
        except PyMongoError as exc:
            if is_duplicate_key(exc):
                return False
            _raise(exc)
        return True

    # -- completion notices (docs/decisions/0008) ---------------------------------------------

    async def read_notice(self, event_id: str, status: Status) -> dict[str, Any] | None:
        """The claim of the move to ``status`` if it holds that move's notice, else None."""
        try:
            claim = await self._claims.find_one({"_id": claim_doc_id(event_id, claim_name(status))})
        except PyMongoError as exc:
            _raise(exc)
        if claim is None or claim.get("notice_id") != f"{event_id}/{status.value}":
            return None
        return claim

    async def set_notice(self, event_id: str, status: Status, fields: Mapping[str, Any]) -> None:
        """``$set`` delivery bookkeeping (``log_position``, ``notified_at``) on the claim."""
        try:
            await self._claims.update_one(
                {"_id": claim_doc_id(event_id, claim_name(status))}, {"$set": dict(fields)}
            )
        except PyMongoError as exc:
            _raise(exc)

    async def pending_notices(self, before: datetime, limit: int = 100) -> list[dict[str, Any]]:
        """Pending markers last touched before ``before`` (a scan of a collection that holds
        only notices in flight: a repair path)."""
        try:
            cursor = self._notices.find({"at": {"$lt": before}}).sort("_id", ASCENDING)
            return [doc async for doc in cursor.limit(limit)]
        except PyMongoError as exc:
            _raise(exc)

    async def pending_notice(self, notice_id: str) -> dict[str, Any] | None:
        try:
            return await self._notices.find_one({"_id": notice_id})
        except PyMongoError as exc:
            _raise(exc)

    async def update_pending(self, notice_id: str, fields: Mapping[str, Any]) -> None:
        try:
            await self._notices.update_one({"_id": notice_id}, {"$set": dict(fields)})
        except PyMongoError as exc:
            _raise(exc)

    async def drop_pending(self, notice_id: str) -> None:
        try:
            await self._notices.delete_one({"_id": notice_id})
        except PyMongoError as exc:
            _raise(exc)

    async def claim(self, event_id: str, name: str) -> bool:
        try:
            await self._claims.insert_one(
                {"_id": claim_doc_id(event_id, name), "event_id": event_id, "at": _now()}
            )
        except PyMongoError as exc:
            if is_duplicate_key(exc):
                return False
            _raise(exc)
        return True

    async def find(
        self,
        status: Status,
        *,
        before: datetime | None = None,
        after_id: str | None = None,
        unpurged: bool = False,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"status": status.value}
        if before is not None:
            query["updated_at"] = {"$lt": before}
        if after_id is not None:
            query["_id"] = {"$gt": after_id}
        if unpurged:
            query["purged_at"] = {"$exists": False}
        try:
            cursor = self._events.find(query).sort("_id", ASCENDING).limit(limit)
            return [doc async for doc in cursor]
        except PyMongoError as exc:
            _raise(exc)

    # -- task chunks --------------------------------------------------------------------------

    async def record_chunk(self, event_id: str, chunk: TaskChunk) -> None:
        document = chunk_document(event_id, chunk, _now())
        try:
            await self._chunks.replace_one({"_id": document["_id"]}, document, upsert=True)
        except PyMongoError as exc:
            if not is_duplicate_key(exc):  # two upserts of one new _id: the other one won
                _raise(exc)

    async def read_chunk(self, event_id: str, index: int) -> TaskChunk | None:
        try:
            document = await self._chunks.find_one({"_id": chunk_doc_id(event_id, index)})
        except PyMongoError as exc:
            _raise(exc)
        return None if document is None else chunk_of_document(document)

    # -- results and progress ---------------------------------------------------------------

    async def save_results(self, results: Sequence[tuple[str, FrameResult]]) -> list[bool]:
        now = _now()
        documents = [result_document(event_id, result, now) for event_id, result in results]
        first = [True] * len(documents)
        for start in range(0, len(documents), _BULK_SIZE):
            part = documents[start : start + _BULK_SIZE]
            try:
                await self._results.insert_many(part, ordered=False)
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if not is_duplicate_key(exc):
                    _raise(exc)
                for error in errors:
                    first[start + int(error["index"])] = False
            except PyMongoError as exc:
                _raise(exc)
        return first

    async def add_progress(self, event_id: str, partition: int, counts: ResultCounts) -> None:
        try:
            await self._progress.update_one(
                {"_id": progress_doc_id(event_id, partition)},
                {
                    "$inc": {"stored": counts.stored, "failed": counts.failed},
                    "$set": {"event_id": event_id, "updated_at": counts.last_at or _now()},
                },
                upsert=True,
            )
        except PyMongoError as exc:
            _raise(exc)

    async def progress(self, event_id: str, partitions: int) -> ResultCounts:
        ids = [progress_doc_id(event_id, p) for p in range(partitions)]
        total = ResultCounts()
        for document in await self._by_ids(self._progress, ids):
            total += ResultCounts(
                int(document.get("stored") or 0),
                int(document.get("failed") or 0),
                document.get("updated_at"),
            )
        return total

    async def _by_ids(
        self, collection: AsyncCollection[dict[str, Any]], ids: Sequence[str]
    ) -> list[dict[str, Any]]:
        """Documents by ``_id``, one lookup each, a window of them in flight at a time.

        ``{_id: {$in: [...]}}`` would be one round trip, but FerretDB answers it with a scan;
        single-``_id`` lookups stay flat everywhere.
        """
        found: list[dict[str, Any]] = []
        try:
            for start in range(0, len(ids), _LOOKUP_WINDOW):
                window = ids[start : start + _LOOKUP_WINDOW]
                documents = await asyncio.gather(*(collection.find_one({"_id": i}) for i in window))
                found.extend(d for d in documents if d is not None)
        except PyMongoError as exc:
            _raise(exc)
        return found

    async def recount(self, event_id: str) -> ResultCounts:
        try:
            stored = await self._results.count_documents({"event_id": event_id})
            failed = await self._results.count_documents({"event_id": event_id, "failed": True})
        except PyMongoError as exc:
            _raise(exc)
        return ResultCounts(stored, failed, _now())

    async def results_of(self, event_id: str, frame_ids: Sequence[int]) -> dict[int, FrameResult]:
        ids = [result_doc_id(event_id, f) for f in frame_ids]
        results = (frame_result_of(d) for d in await self._by_ids(self._results, ids))
        return {result.frame_id: result for result in results}

    # -- retention --------------------------------------------------------------------------

    async def purge(
        self, event_id: str, frame_ids: Sequence[int], chunks: int, partitions: int
    ) -> int:
        deleted = 0
        plans = [
            (self._results, [result_doc_id(event_id, f) for f in frame_ids]),
            (self._chunks, [chunk_doc_id(event_id, k) for k in range(chunks)]),
            (self._progress, [progress_doc_id(event_id, p) for p in range(partitions)]),
        ]
        try:
            for collection, ids in plans:
                for start in range(0, len(ids), _BULK_SIZE):
                    requests = [DeleteOne({"_id": i}) for i in ids[start : start + _BULK_SIZE]]
                    if requests:
                        outcome = await collection.bulk_write(requests, ordered=False)
                        deleted += outcome.deleted_count
        except PyMongoError as exc:
            _raise(exc)
        return deleted
