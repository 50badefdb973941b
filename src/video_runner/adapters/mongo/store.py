"""The MongoDB prediction store: events, their moves and claims, over the results and notice
records."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient
from pymongo.errors import PyMongoError

from video_runner.adapters.error_classes import is_duplicate_key
from video_runner.adapters.mongo.collections import raise_classified
from video_runner.adapters.mongo.documents import (
    claim_doc_id,
    new_event_document,
    pending_notice_document,
    prediction_of,
    utc_now,
)
from video_runner.adapters.mongo.notices import NoticeRecords
from video_runner.adapters.mongo.results import ResultRecords
from video_runner.adapters.mongo.versions import VersionRecords
from video_runner.contracts.notice import notice_document, notice_for
from video_runner.domain.prediction import Prediction
from video_runner.domain.status import Status, can_move, claim_name

#: Claims looked up by one query.
_CLAIMS_WINDOW = 256


class MongoPredictionStore(ResultRecords, NoticeRecords, VersionRecords):
    """Implements ``ports.PredictionStore`` and ``ports.VersionStore``."""

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

    async def begin(self, event_id: str, fields: Mapping[str, Any]) -> bool:
        now = utc_now()
        try:
            await self._events.insert_one(new_event_document(event_id, fields, now))
        except PyMongoError as exc:
            if not is_duplicate_key(exc):
                raise_classified(exc)
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
        current = await self.get(event_id)
        if current is None or not current.accepts_results:
            return False
        if only_unpublished and current.extraction_done:
            return False
        await self._set(event_id, fields)
        return True

    async def annotate(self, event_id: str, fields: Mapping[str, Any]) -> None:
        await self._set(event_id, fields)

    async def transition(
        self,
        event_id: str,
        target: Status,
        fields: Mapping[str, Any],
        *,
        source: Status | None = None,
    ) -> bool:
        """Claim the move, then apply it by ``_id``.

        The claim (a unique insert) is what makes one caller win even where conditional updates
        are not atomic (FerretDB). It holds the fields, so if its winner dies before applying
        them, the next caller that tries any move of the same kind applies the winner's move.
        A terminal move's claim also holds its completion notice, unpublished (outbox-style:
        the notice exists exactly when the move was won), and a pending marker is written to
        ``runner_notices`` before the claim, so the sweep finds a notice whose winner died
        without a scan of the claims (docs/decisions/0008).
        """
        current = await self.get(event_id)
        if current is None or (source is not None and current.status is not source):
            return False
        if not can_move(current.status, target, named=source is not None):
            return False
        name = claim_name(current.status)
        applied = {**fields, "status": target.value}
        now = utc_now()
        claim: dict[str, Any] = {
            "_id": claim_doc_id(event_id, name),
            "event_id": event_id,
            "fields": applied,
            "at": now,
        }
        notice = notice_for(current.document, target, applied)
        if notice is not None:
            claim["notice"] = notice_document(notice)
            claim["notice_id"] = notice.notice_id
            claim["callback_url"] = current.callback_url
            await self._insert_once(
                self._notices,
                pending_notice_document(
                    notice.notice_id, event_id, target, current.callback_url, now
                ),
            )
        try:
            await self._claims.insert_one(claim)
        except PyMongoError as exc:
            if not is_duplicate_key(exc):
                raise_classified(exc)
            winner = await self._claims.find_one({"_id": claim_doc_id(event_id, name)})
            if winner is None:  # pragma: no cover - claims are never deleted
                return False
            # The winner's move may not be applied yet: apply it (the same values again).
            await self._set(event_id, winner["fields"])
            return False
        await self._set(event_id, applied)
        return True

    async def claim(self, event_id: str, name: str) -> bool:
        try:
            await self._claims.insert_one(
                {"_id": claim_doc_id(event_id, name), "event_id": event_id, "at": utc_now()}
            )
        except PyMongoError as exc:
            if is_duplicate_key(exc):
                return False
            raise_classified(exc)
        return True

    async def claims_held(self, event_id: str, names: Sequence[str]) -> set[str]:
        ids = {claim_doc_id(event_id, name): name for name in names}
        keys = list(ids)
        held: set[str] = set()
        try:
            # In windows: a 3-hour video has a few hundred segments, one ``$in`` each window.
            for start in range(0, len(keys), _CLAIMS_WINDOW):
                window = keys[start : start + _CLAIMS_WINDOW]
                async for found in self._claims.find({"_id": {"$in": window}}, {"_id": 1}):
                    held.add(ids[str(found["_id"])])
        except PyMongoError as exc:
            raise_classified(exc)
        return held

    async def find(
        self,
        status: Status,
        *,
        before: datetime | None = None,
        after_id: str | None = None,
        unpurged: bool = False,
        limit: int = 100,
    ) -> list[Prediction]:
        query: dict[str, Any] = {"status": status.value}
        if before is not None:
            query["updated_at"] = {"$lt": before}
        if after_id is not None:
            query["_id"] = {"$gt": after_id}
        if unpurged:
            query["purged_at"] = {"$exists": False}
        try:
            cursor = self._events.find(query).sort("_id", ASCENDING).limit(limit)
            return [prediction_of(doc) async for doc in cursor]
        except PyMongoError as exc:
            raise_classified(exc)
