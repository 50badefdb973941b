"""The documents of the six collections: their ``_id`` and their shape, pure."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from video_runner.domain.notice_records import LogPosition, NoticeClaim, PendingNotice
from video_runner.domain.prediction import Prediction
from video_runner.domain.results import FrameResult
from video_runner.domain.status import Status
from video_runner.domain.task_pages import TaskPage, TaskRecord

#: Bounded bulk writes: one huge write would outlast the socket timeout on a slow server.
BULK_SIZE = 1000
#: ``_id`` values in one ``{_id: {$in: [...]}}`` lookup: a task page's worth and more, one round
#: trip, and under the bound the local FerretDB pushes down to its ``_id`` index (1,000).
LOOKUP_WINDOW = 256


def result_doc_id(event_id: str, frame_id: int) -> str:
    """The natural key of a frame's result."""
    return f"{event_id}/{frame_id}"


def task_page_id(event_id: str, index: int) -> str:
    return f"{event_id}/c{index}"


def segment_pages_id(event_id: str, segment: int) -> str:
    return f"{event_id}/s{segment}"


def progress_doc_id(event_id: str, partition: int) -> str:
    return f"{event_id}/p{partition}"


def claim_doc_id(event_id: str, name: str) -> str:
    return f"{event_id}/{name}"


def frame_result_of(document: Mapping[str, Any]) -> FrameResult:
    """The ``FrameResult`` of a stored result document (``objects_json``, or the ``objects``
    array of documents stored before it)."""
    timestamp = document.get("timestamp_ms")
    text = document.get("objects_json")
    objects = json.loads(text) if isinstance(text, str) else document.get("objects")
    return FrameResult(
        frame_id=int(document["frame_id"]),
        timestamp_ms=None if timestamp is None else int(timestamp),
        objects=list(objects or []),
        error=document.get("error"),
        model=document.get("model"),
    )


def result_document(event_id: str, result: FrameResult, now: datetime) -> dict[str, Any]:
    # The detections as one JSON string: nothing queries inside them, and a merge reads them
    # all back (docs/decisions/0017: a fifth of the store's cost per document of an array).
    return {
        "_id": result_doc_id(event_id, result.frame_id),
        "event_id": event_id,
        "frame_id": result.frame_id,
        "timestamp_ms": result.timestamp_ms,
        "objects_json": json.dumps(result.objects, separators=(",", ":")),
        "error": result.error,
        "model": result.model,
        "failed": result.error is not None,
        "stored_at": now,
    }


def task_page_document(event_id: str, page: TaskPage, now: datetime) -> dict[str, Any]:
    return {
        "_id": task_page_id(event_id, page.index),
        "event_id": event_id,
        **page_fields(page),
        "written_at": now,
    }


def page_fields(page: TaskPage) -> dict[str, Any]:
    """A page's records, as its document holds them (and a segment's document, per page)."""
    return {
        "page": page.index,
        "bucket": page.bucket,
        "tasks": [task.as_dict() for task in page.tasks],
    }


def task_page_of_document(document: Mapping[str, Any]) -> TaskPage:
    return TaskPage(
        index=int(document["page"]),
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


def pending_notice_of(marker: Mapping[str, Any]) -> PendingNotice:
    """The typed form of a ``runner_notices`` marker (``pending_notice_document``)."""
    return PendingNotice(
        notice_id=str(marker["_id"]),
        event_id=str(marker["event_id"]),
        status=Status(marker["status"]),
        attempts=int(marker.get("attempts") or 0),
        webhook_attempts=int(marker.get("webhook_attempts") or 0),
        published=bool(marker.get("published")),
        at=marker["at"],
    )


def notice_claim_of(claim: Mapping[str, Any], notice: dict[str, Any]) -> NoticeClaim:
    """The typed form of a terminal move's claim, with its notice as published."""
    position = claim.get("log_position")
    url = claim.get("callback_url")
    return NoticeClaim(
        event_id=str(claim["event_id"]),
        notice_id=str(claim["notice_id"]),
        notice=notice,
        callback_url=url if isinstance(url, str) and url else None,
        log_position=(
            LogPosition(int(position["partition"]), int(position["offset"]))
            if isinstance(position, Mapping)
            else None
        ),
        notified_at=claim.get("notified_at"),
    )


def prediction_of(document: Mapping[str, Any]) -> Prediction:
    """The ``Prediction`` of a stored event document: fields it does not know are kept in
    ``document`` only, missing ones take their defaults (older documents lack some)."""
    source = document.get("source") or {}
    total = document.get("total_frames")
    return Prediction(
        event_id=str(document["_id"]),
        status=Status(document["status"]),
        total_frames=None if total is None else int(total),
        frames_published=int(document.get("frames_published") or 0),
        results_partitions=max(int(document.get("results_partitions") or 1), 1),
        source_bucket=source.get("bucket"),
        source_key=source.get("object"),
        sampling=document.get("sampling"),
        options=document.get("options") or {},
        error=document.get("error"),
        output_s3=document.get("output_s3"),
        results_received=int(document.get("results_received") or 0),
        failed_frames=int(document.get("failed_frames") or 0),
        webhook=document.get("webhook") or {},
        created_at=document.get("created_at"),
        updated_at=document.get("updated_at"),
        extracted_at=document.get("extracted_at"),
        purged_at=document.get("purged_at"),
        document=document,
    )


def utc_now() -> datetime:
    return datetime.now(UTC)
