"""The fake store with re-runs and frames retention: ``ports.VersionStore`` over the same
in-memory state as ``FakePredictionStore`` (claims, documents), as the MongoDB store adds
``VersionRecords`` to the same collections."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from support.fakes import FakePredictionStore
from video_runner.adapters.mongo.documents import prediction_of
from video_runner.domain.prediction import Prediction
from video_runner.domain.status import Status

_ENDED = {Status.READY.value, Status.FAILED.value}


class FakeVersionStore(FakePredictionStore):
    """Implements ``ports.PredictionStore`` and ``ports.VersionStore`` in memory."""

    async def claim_holding(
        self, event_id: str, name: str, fields: Mapping[str, Any]
    ) -> dict[str, Any]:
        await self._round_trip()
        claim = self.claims.setdefault(
            (event_id, name), {"at": self.clock(), "held": copy.deepcopy(dict(fields))}
        )
        return copy.deepcopy(dict(claim.get("held") or {}))

    async def frames_kept(
        self, before: datetime, *, after_id: str | None = None, limit: int = 100
    ) -> list[Prediction]:
        await self._round_trip()
        self.scans += 1
        found = sorted(
            (
                d
                for d in self.documents.values()
                if d["status"] in _ENDED
                and d["updated_at"] < before
                and d.get("frames_deleted_at") is None
                and d.get("version_of") is None
                and (after_id is None or d["_id"] > after_id)
            ),
            key=lambda d: str(d["_id"]),
        )
        return [prediction_of(d) for d in copy.deepcopy(found[:limit])]


if TYPE_CHECKING:
    from video_runner import ports

    _store: ports.PredictionStore = FakeVersionStore()
    _versions: ports.VersionStore = FakeVersionStore()
