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
    notice_claim_of,
    pending_notice_of,
)
from video_runner.contracts.notice import notice_from_document
from video_runner.domain.notice_records import NoticeClaim, PendingNotice
from video_runner.domain.status import Status, claim_names


class NoticeRecords(Collections):
    """Implements ``ports.NoticeStore``."""

    async def read_notice(self, event_id: str, status: Status) -> NoticeClaim | None:
        """The claim of the move to ``status`` if it holds that move's notice, else None."""
        for name in claim_names(status):
            try:
                claim = await self._claims.find_one({"_id": claim_doc_id(event_id, name)})
            except PyMongoError as exc:
                raise_classified(exc)
            if claim is not None and claim.get("notice_id") == f"{event_id}/{status.value}":
                return notice_claim_of(claim, notice_from_document(claim["notice"]))
        return None

    async def set_notice(self, event_id: str, status: Status, fields: Mapping[str, Any]) -> None:
        """``$set`` delivery bookkeeping (``log_position``, ``notified_at``) on the claim."""
        notice_id = f"{event_id}/{status.value}"
        for name in claim_names(status):
            try:
                await self._claims.update_one(
                    {"_id": claim_doc_id(event_id, name), "notice_id": notice_id},
                    {"$set": dict(fields)},
                )
            except PyMongoError as exc:
                raise_classified(exc)

    async def pending_notices(self, before: datetime, limit: int = 100) -> list[PendingNotice]:
        """Pending markers last touched before ``before`` (a scan of a collection that holds
        only notices in flight: a repair path)."""
        try:
            cursor = self._notices.find({"at": {"$lt": before}}).sort("_id", ASCENDING)
            return [pending_notice_of(doc) async for doc in cursor.limit(limit)]
        except PyMongoError as exc:
            raise_classified(exc)

    async def pending_notice(self, notice_id: str) -> PendingNotice | None:
        try:
            marker = await self._notices.find_one({"_id": notice_id})
        except PyMongoError as exc:
            raise_classified(exc)
        return None if marker is None else pending_notice_of(marker)

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
