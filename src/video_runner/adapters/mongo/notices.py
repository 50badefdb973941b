"""Completion notices in the store (docs/decisions/0008): the notice on a terminal move's claim,
and the pending markers of ``runner_notices`` the sweep reads."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.errors import PyMongoError

from video_runner.adapters.mongo.collections import Collections, raise_classified
from video_runner.adapters.mongo.documents import (
    claim_doc_id,
)
from video_runner.domain.status import Status, claim_name


class NoticeRecords(Collections):
    """The notice side of ``ports.PredictionStore``."""

    async def read_notice(self, event_id: str, status: Status) -> dict[str, Any] | None:
        """The claim of the move to ``status`` if it holds that move's notice, else None."""
        try:
            claim = await self._claims.find_one({"_id": claim_doc_id(event_id, claim_name(status))})
        except PyMongoError as exc:
            raise_classified(exc)
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
            raise_classified(exc)

    async def pending_notices(self, before: datetime, limit: int = 100) -> list[dict[str, Any]]:
        """Pending markers last touched before ``before`` (a scan of a collection that holds
        only notices in flight: a repair path)."""
        try:
            cursor = self._notices.find({"at": {"$lt": before}}).sort("_id", ASCENDING)
            return [doc async for doc in cursor.limit(limit)]
        except PyMongoError as exc:
            raise_classified(exc)

    async def pending_notice(self, notice_id: str) -> dict[str, Any] | None:
        try:
            return await self._notices.find_one({"_id": notice_id})
        except PyMongoError as exc:
            raise_classified(exc)

    async def update_pending(self, notice_id: str, fields: Mapping[str, Any]) -> None:
        try:
            await self._notices.update_one({"_id": notice_id}, {"$set": dict(fields)})
        except PyMongoError as exc:
            raise_classified(exc)

    async def drop_pending(self, notice_id: str) -> None:
        try:
            await self._notices.delete_one({"_id": notice_id})
        except PyMongoError as exc:
            raise_classified(exc)
