"""What the ``reinfer`` command does, over the ports: ask for a re-run, find the version the
runner gave it, wait for that version to end."""

from __future__ import annotations

import asyncio
import time

from video_runner.contracts.reinfer_event import ReinferEvent
from video_runner.errors import RetriableError
from video_runner.ports import PredictionStore, Publisher
from video_runner.services.client_actions import WaitTimeout


async def request_rerun(
    publisher: Publisher, topic: str, event_id: str, request_id: str, detector: str | None
) -> None:
    """Publish the ``reinfer`` message on ``outbox_events`` (keyed by the event, like its own)."""
    message = ReinferEvent(
        type="reinfer", event_id=event_id, request_id=request_id, detector=detector
    )
    await publisher.publish(topic, event_id, message.as_message())


async def version_of_request(
    store: PredictionStore, event_id: str, request_id: str, *, timeout_s: float, poll_s: float = 0.3
) -> str:
    """The event id of the version the runner made for ``request_id`` (named on the original's
    ``versions`` once the re-run is accepted); ``WaitTimeout`` if none comes in time."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            original = await store.get(event_id)
        except RetriableError:
            original = None
        versions = {} if original is None else original.document.get("versions") or {}
        for entry in versions.values():
            if isinstance(entry, dict) and entry.get("request_id") == request_id:
                return str(entry["event_id"])
        if time.monotonic() >= deadline:
            raise WaitTimeout(
                f"no version of {event_id} for request {request_id} within {timeout_s:.0f} s "
                "(refused requests are dead-lettered with their reason: outbox_events.dlq)"
            )
        await asyncio.sleep(poll_s)
