"""Task pages, frame results and per-partition progress: the results path's documents, all
named by ``_id`` (docs/decisions/0006), and their purge."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo import DeleteOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, PyMongoError

from video_runner.adapters.error_classes import is_duplicate_key
from video_runner.adapters.mongo.collections import Collections, raise_classified
from video_runner.adapters.mongo.documents import (
    BULK_SIZE,
    LOOKUP_WINDOW,
    frame_result_of,
    page_fields,
    progress_doc_id,
    result_doc_id,
    result_document,
    segment_pages_id,
    task_page_document,
    task_page_id,
    task_page_of_document,
    utc_now,
)
from video_runner.domain.results import FrameResult, ResultCounts
from video_runner.domain.task_pages import TaskPage


class ResultRecords(Collections):
    """The pages, results and progress side of ``ports.PredictionStore``."""

    async def record_task_page(self, event_id: str, page: TaskPage) -> None:
        document = task_page_document(event_id, page, utc_now())
        try:
            await self._task_pages.replace_one({"_id": document["_id"]}, document, upsert=True)
        except PyMongoError as exc:
            if not is_duplicate_key(exc):  # two upserts of one new _id: the other one won
                raise_classified(exc)

    async def read_task_page(self, event_id: str, index: int) -> TaskPage | None:
        try:
            document = await self._task_pages.find_one({"_id": task_page_id(event_id, index)})
        except PyMongoError as exc:
            raise_classified(exc)
        return None if document is None else task_page_of_document(document)

    async def record_segment_pages(
        self, event_id: str, segment: int, pages: Sequence[TaskPage]
    ) -> None:
        document = {
            "_id": segment_pages_id(event_id, segment),
            "event_id": event_id,
            "segment": segment,
            "pages": [page_fields(page) for page in pages],
            "written_at": utc_now(),
        }
        try:
            await self._task_pages.replace_one({"_id": document["_id"]}, document, upsert=True)
        except PyMongoError as exc:
            if not is_duplicate_key(exc):  # two upserts of one new _id: the other one won
                raise_classified(exc)

    async def read_segment_pages(self, event_id: str, segment: int) -> list[TaskPage]:
        try:
            document = await self._task_pages.find_one({"_id": segment_pages_id(event_id, segment)})
        except PyMongoError as exc:
            raise_classified(exc)
        if document is None:
            return []
        return [task_page_of_document(page) for page in document["pages"]]

    async def save_results(self, results: Sequence[tuple[str, FrameResult]]) -> list[bool]:
        now = utc_now()
        documents = [result_document(event_id, result, now) for event_id, result in results]
        first = [True] * len(documents)
        for start in range(0, len(documents), BULK_SIZE):
            part = documents[start : start + BULK_SIZE]
            try:
                await self._results.insert_many(part, ordered=False)
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if not is_duplicate_key(exc):
                    raise_classified(exc)
                for error in errors:
                    first[start + int(error["index"])] = False
            except PyMongoError as exc:
                raise_classified(exc)
        return first

    async def add_progress(self, event_id: str, partition: int, counts: ResultCounts) -> None:
        try:
            await self._progress.update_one(
                {"_id": progress_doc_id(event_id, partition)},
                {
                    "$inc": {"stored": counts.stored, "failed": counts.failed},
                    "$set": {"event_id": event_id, "updated_at": counts.last_at or utc_now()},
                },
                upsert=True,
            )
        except PyMongoError as exc:
            raise_classified(exc)

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
        """Documents by ``_id``: one ``$in`` lookup on the ``_id`` index per window of ids.

        One round trip a window, where a ``find_one`` each cost a round trip and about a
        millisecond of the client's CPU per document (a 54,000-frame merge spent a minute on
        them). MongoDB answers ``$in`` on ``_id`` from its index; so does the local FerretDB,
        with the project's patch (tools/ferretdb/patches/).
        """
        found: list[dict[str, Any]] = []
        try:
            for start in range(0, len(ids), LOOKUP_WINDOW):
                window = ids[start : start + LOOKUP_WINDOW]
                found.extend(await collection.find({"_id": {"$in": window}}).to_list(None))
        except PyMongoError as exc:
            raise_classified(exc)
        return found

    async def recount(self, event_id: str) -> ResultCounts:
        try:
            stored = await self._results.count_documents({"event_id": event_id})
            failed = await self._results.count_documents({"event_id": event_id, "failed": True})
        except PyMongoError as exc:
            raise_classified(exc)
        return ResultCounts(stored, failed, utc_now())

    async def results_of(self, event_id: str, frame_ids: Sequence[int]) -> dict[int, FrameResult]:
        ids = [result_doc_id(event_id, f) for f in frame_ids]
        results = (frame_result_of(d) for d in await self._by_ids(self._results, ids))
        return {result.frame_id: result for result in results}

    async def purge(
        self,
        event_id: str,
        frame_ids: Sequence[int],
        pages: int,
        partitions: int,
        segments: int = 0,
    ) -> int:
        deleted = 0
        plans = [
            (self._results, [result_doc_id(event_id, f) for f in frame_ids]),
            (self._task_pages, [task_page_id(event_id, k) for k in range(pages)]),
            (self._task_pages, [segment_pages_id(event_id, k) for k in range(segments)]),
            (self._progress, [progress_doc_id(event_id, p) for p in range(partitions)]),
        ]
        try:
            for collection, ids in plans:
                for start in range(0, len(ids), BULK_SIZE):
                    requests = [DeleteOne({"_id": i}) for i in ids[start : start + BULK_SIZE]]
                    if requests:
                        outcome = await collection.bulk_write(requests, ordered=False)
                        deleted += outcome.deleted_count
        except PyMongoError as exc:
            raise_classified(exc)
        return deleted
