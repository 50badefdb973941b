"""`submit --wait` follows prediction_events; polling the store is only the fallback."""

from __future__ import annotations

import asyncio
import json

import pytest

from support.fakes import FakePredictionStore
from video_runner.domain.status import Status
from video_runner.errors import DependencyUnavailable
from video_runner.services.client_actions import WaitTimeout, wait_for_notice

READY = {
    "version": 1,
    "notice_id": "ev-1/ready",
    "event_id": "ev-1",
    "status": "ready",
    "at": "2024-01-01T12:00:00Z",
    "tag": None,
    "durations": {"total_ms": 1000},
    "output_s3": "s3://videos/detection/ev-1.json",
    "frames": 3,
    "failed_frames": 0,
    "detections": {"person": 2},
}


class FeedOf:
    """A started feed that hands out the given batches, then nothing; ``None`` breaks it."""

    def __init__(self, *batches) -> None:
        self.batches = list(batches)

    async def start(self, topic: str) -> None:  # noqa: ARG002 - the port's signature
        await asyncio.sleep(0)

    async def poll(self, timeout_s: float):
        await asyncio.sleep(0)
        if not self.batches:
            await asyncio.sleep(min(timeout_s, 0.01))
            return []
        batch = self.batches.pop(0)
        if batch is None:
            raise DependencyUnavailable("kafka", "fake: feed broken")
        return [(key.encode(), json.dumps(value).encode()) for key, value in batch]

    async def stop(self) -> None:
        await asyncio.sleep(0)


async def test_the_event_s_notice_ends_the_wait_with_its_output_and_others_are_skipped():
    """Notices of other events (and a value that is no notice) pass by; the store is not read."""
    store = FakePredictionStore()
    other = {**READY, "event_id": "ev-2", "notice_id": "ev-2/ready"}
    feed = FeedOf([("ev-2", other), ("ev-1", {"junk": True})], [("ev-1", READY)])
    outcome = await wait_for_notice(feed, store, "ev-1", timeout_s=5)
    assert outcome["status"] == "ready"
    assert outcome["output_s3"] == "s3://videos/detection/ev-1.json"
    assert outcome["notice"]["detections"] == {"person": 2}


async def test_a_failed_notice_gives_the_error_code_and_reason():
    """The CLI prints these and exits 3."""
    failed = {
        key: value
        for key, value in READY.items()
        if key not in {"output_s3", "frames", "failed_frames", "detections"}
    }
    failed |= {
        "status": "failed",
        "notice_id": "ev-1/failed",
        "error": {"code": "corrupt", "message": "bad packet"},
    }
    outcome = await wait_for_notice(
        FeedOf([("ev-1", failed)]), FakePredictionStore(), "ev-1", timeout_s=5
    )
    assert outcome["status"] == "failed"
    assert outcome["error"] == {"code": "corrupt", "message": "bad packet"}


async def test_a_broken_feed_falls_back_to_polling_the_store():
    """The topic went away mid-wait: the document decides."""
    store = FakePredictionStore()
    store.put("ev-1", Status.READY, output_s3="s3://videos/detection/ev-1.json")
    outcome = await wait_for_notice(FeedOf(None), store, "ev-1", timeout_s=5)
    assert outcome["status"] == "ready"
    assert outcome["_id"] == "ev-1"


async def test_at_the_deadline_the_store_is_read_once_for_a_late_notice():
    """No notice yet, but the document is ready (its notice is still pending): it is the answer;
    a document still processing is a timeout."""
    store = FakePredictionStore()
    store.put("ev-1", Status.READY, output_s3="s3://videos/detection/ev-1.json")
    outcome = await wait_for_notice(FeedOf(), store, "ev-1", timeout_s=0.05)
    assert outcome["status"] == "ready"
    store.put("ev-2", Status.PROCESSING, results_partitions=1)
    with pytest.raises(WaitTimeout, match="processing"):
        await wait_for_notice(FeedOf(), store, "ev-2", timeout_s=0.05)
