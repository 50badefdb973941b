"""Reading every event of one status, page by page: the one way the repair loops and the
dashboard scan the store."""

from __future__ import annotations

from datetime import datetime

from video_runner.domain.prediction import Prediction
from video_runner.domain.status import Status
from video_runner.ports import PredictionStore

PAGE = 200


async def find_all(
    store: PredictionStore,
    status: Status,
    *,
    before: datetime | None = None,
    unpurged: bool = False,
    cap: int | None = None,
) -> list[Prediction]:
    """Events in ``status`` by ``_id``, a page at a time, stopping after ``cap`` when given.

    A cursor by ``_id`` (never skip/limit over a changing set) lets nothing hide behind events
    that changed between pages.
    """
    found: list[Prediction] = []
    after: str | None = None
    while cap is None or len(found) < cap:
        page = await store.find(
            status, before=before, after_id=after, unpurged=unpurged, limit=PAGE
        )
        found.extend(page)
        if len(page) < PAGE:
            break
        after = page[-1].event_id
    return found
