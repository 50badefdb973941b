"""What the ``submit``, ``status`` and ``result`` commands do, over the ports."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from video_runner.contracts.notice import notice_json, parse_notice
from video_runner.domain.ids import video_key
from video_runner.domain.status import Status
from video_runner.errors import PermanentError, RetriableError, VideoRunnerError
from video_runner.ports import NoticeFeed, ObjectStore, PredictionStore, RawPublisher
from video_runner.services.video_segments import segment_claim


class WaitTimeout(VideoRunnerError):
    """The event did not finish within the time the caller was willing to wait."""


async def submit(
    objects: ObjectStore,
    publisher: RawPublisher,
    *,
    bucket: str,
    topic: str,
    video: Path,
    options: Mapping[str, Any] | None = None,
) -> str:
    """Upload ``video`` as ``input/{uuid4}.mp4`` and publish its outbox event; returns the id.

    ``options`` become the event's ``payload.options`` (none: the runner's defaults).
    """
    event_id = str(uuid.uuid4())
    key = video_key(event_id)
    await objects.ensure_bucket(bucket)
    await objects.upload_file(bucket, key, video, "video/mp4")
    payload: dict[str, Any] = {"bucket": bucket, "object": key, "media_type": "video"}
    if options:
        payload["options"] = dict(options)
    event = {"event_id": event_id, "payload": payload}
    await publisher.publish(topic, event_id, event)
    return event_id


async def status_of(store: PredictionStore, event_id: str) -> dict[str, Any] | None:
    """The event's document, with live result counts while it is processing.

    Counts live in per-partition counters while the event waits for results (the document only
    gets its summary at the transition): reading them is a few lookups by ``_id``.
    """
    prediction = await store.get(event_id)
    if prediction is None:
        return None
    if prediction.accepts_results:
        counts = await store.progress(event_id, prediction.results_partitions)
        prediction = prediction.with_progress(counts)
    document = prediction.as_document()
    count = prediction.segment_count
    if count and prediction.accepts_results:
        # Segments done are claims, not fields of the document (docs/decisions/0016).
        names = [segment_claim(index) for index in range(count)]
        done = len(await store.claims_held(event_id, names))
        document["segments"] = {**document["segments"], "done": done}
    return document


async def wait_until_finished(
    store: PredictionStore,
    event_id: str,
    *,
    timeout_s: float,
    on_progress: Callable[[Mapping[str, Any] | None], None] | None = None,
    poll_s: float = 0.2,
) -> dict[str, Any]:
    """Poll the prediction document until ``ready`` or ``failed``; raises ``WaitTimeout``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            document = await status_of(store, event_id)
        except RetriableError:
            document = None
        if on_progress is not None:
            on_progress(document)
        if document is not None and document["status"] in {Status.READY, Status.FAILED}:
            return document
        if time.monotonic() >= deadline:
            state = "not seen yet" if document is None else document["status"]
            raise WaitTimeout(f"event {event_id} did not finish within {timeout_s:.0f} s ({state})")
        await asyncio.sleep(poll_s)


async def wait_for_notice(
    feed: NoticeFeed,
    store: PredictionStore,
    event_id: str,
    *,
    timeout_s: float,
    on_progress: Callable[[Mapping[str, Any] | None], None] | None = None,
) -> dict[str, Any]:
    """Wait for the event's completion notice on the feed (started before the submission).

    The outcome as a document (``_id``, ``status``, ``output_s3`` or ``error``, ``notice``).
    Polling the store is the fallback: when the feed breaks, for the time that is left; and
    once at the deadline, in case the notice is late (its publisher died and the sweep has not
    caught up). ``on_progress`` gets the document now and then for a progress display.
    """
    deadline = time.monotonic() + timeout_s
    progress = (
        None
        if on_progress is None
        else asyncio.create_task(_report_progress(store, event_id, on_progress))
    )
    try:
        try:
            notice = await _notice_of(feed, event_id, deadline)
        except RetriableError:
            notice = None
            remaining = deadline - time.monotonic()
            if remaining > 0:
                return await wait_until_finished(store, event_id, timeout_s=remaining)
        if notice is not None:
            return _outcome(event_id, notice)
        document = await status_of(store, event_id)
        if document is not None and document["status"] in {Status.READY, Status.FAILED}:
            return document
        state = "not seen yet" if document is None else document["status"]
        raise WaitTimeout(f"event {event_id} did not finish within {timeout_s:.0f} s ({state})")
    finally:
        if progress is not None:
            progress.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await progress


async def _notice_of(feed: NoticeFeed, event_id: str, deadline: float) -> dict[str, Any] | None:
    wanted = event_id.encode()
    while (left := deadline - time.monotonic()) > 0:
        for key, value in await feed.poll(min(left, 1.0)):
            if key != wanted:
                continue
            try:
                return notice_json(parse_notice(value or b""))
            except ValueError:
                continue  # not a notice of ours: keep following
    return None


def _outcome(event_id: str, notice: Mapping[str, Any]) -> dict[str, Any]:
    outcome: dict[str, Any] = {"_id": event_id, "status": notice["status"], "notice": notice}
    if notice["status"] == Status.READY:
        outcome["output_s3"] = notice["output_s3"]
    else:
        outcome["error"] = notice["error"]
    return outcome


async def _report_progress(
    store: PredictionStore,
    event_id: str,
    on_progress: Callable[[Mapping[str, Any] | None], None],
    every_s: float = 1.0,
) -> None:
    while True:
        with contextlib.suppress(RetriableError):
            on_progress(await status_of(store, event_id))
        await asyncio.sleep(every_s)


async def read_result(objects: ObjectStore, document: Mapping[str, Any]) -> bytes:
    """The final JSON of a ``ready`` event, as written to S3."""
    if document["status"] != Status.READY:
        raise PermanentError(f"event {document['_id']} is {document['status']}, not ready")
    location = str(document["output_s3"]).removeprefix("s3://")
    bucket, key = location.split("/", 1)
    return await objects.get_bytes(bucket, key)
