"""The outbox-S3 worker: ``predictable`` events get their final JSON in S3, then become ``ready``.

Several replicas may run: each takes an event under a lease (a conditional update), writes
``detection/{event_id}.json`` to the source bucket (the same bytes whoever writes them), and moves
the event to ``ready`` only while it still holds the lease. A replica that dies mid-write leaves
the lease to expire and another one finishes the event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from video_runner.domain.ids import detection_key
from video_runner.domain.status import Status
from video_runner.errors import RetriableError
from video_runner.ports import ObjectStore, PredictionStore
from video_runner.services.merged_output import write_merged
from video_runner.services.telemetry import Telemetry

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OutboxConfig:
    owner: str
    default_bucket: str
    lease_s: float = 120.0
    poll_interval_s: float = 1.0
    work_dir: Path | None = None


class OutboxS3:
    def __init__(
        self,
        config: OutboxConfig,
        *,
        store: PredictionStore,
        objects: ObjectStore,
        telemetry: Telemetry,
    ) -> None:
        self._config = config
        self._store = store
        self._objects = objects
        self._telemetry = telemetry

    async def run_once(self) -> str | None:
        """Finish one ``predictable`` event if there is one; returns its id."""
        now = datetime.now(UTC)
        until = now + timedelta(seconds=self._config.lease_s)
        document = await self._store.lease(Status.PREDICTABLE, self._config.owner, until, now)
        if document is None:
            return None
        event_id = str(document["_id"])
        bucket = (document.get("source") or {}).get("bucket") or self._config.default_bucket
        key = detection_key(event_id)
        started = time.monotonic()
        with tempfile.TemporaryDirectory(dir=self._config.work_dir) as folder:
            path = Path(folder) / f"{event_id}.json"
            frames = await write_merged(self._store, document, path)
            await self._objects.upload_file(bucket, key, path, "application/json")
        moved = await self._store.transition(
            event_id,
            Status.READY,
            {
                "ready_at": datetime.now(UTC),
                "output_s3": f"s3://{bucket}/{key}",
                "lease_until": None,
            },
            owner=self._config.owner,
        )
        duration = time.monotonic() - started
        self._telemetry.observe("stage_seconds", duration, stage="write_result")
        if moved:
            self._telemetry.count("events_ready")
            log.info(
                "event ready",
                extra={
                    "event_id": event_id,
                    "stage": "write_result",
                    "output": f"s3://{bucket}/{key}",
                    "frames": frames,
                    "duration_s": round(duration, 3),
                },
            )
        else:
            log.warning(
                "lease lost before ready; another replica finishes", extra={"event_id": event_id}
            )
        return event_id

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                done = await self.run_once()
            except RetriableError as exc:
                log.warning("outbox-s3 retriable failure", extra={"error": str(exc)})
                done = None
            except Exception:  # a missing bucket, bad credentials: the lease expires, we go on
                log.exception("outbox-s3 failed to write an event; retried when its lease expires")
                done = None
            if done is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self._config.poll_interval_s)
