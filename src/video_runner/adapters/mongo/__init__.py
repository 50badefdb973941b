"""MongoDB adapter (PyMongo's asyncio API): events, task pages, results, progress and claims.

Six collections in ``runner_db`` (docs/contracts.md, "Documents"):

* ``runner_predictions``: one document per event, ``_id`` = event_id, carrying the status;
* ``runner_task_pages``: ``{event_id}/c{k}``, the records of up to 64 published frame tasks;
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

from video_runner.adapters.mongo.documents import (
    claim_doc_id,
    new_event_document,
    pending_notice_document,
    progress_doc_id,
    result_doc_id,
    task_page_id,
)
from video_runner.adapters.mongo.store import MongoPredictionStore

__all__ = [
    "MongoPredictionStore",
    "claim_doc_id",
    "new_event_document",
    "pending_notice_document",
    "progress_doc_id",
    "result_doc_id",
    "task_page_id",
]
