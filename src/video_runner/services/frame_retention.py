"""Frames retention: an ended event's JPEGs leave the frames bucket ``FRAMES_RETENTION_S`` after
its last run, deleted by prefix (``frames/{event_id}/``), with no S3 lifecycle rule needed.

The clock is the event's last write: a re-run annotates its original when it starts, so frames
a version is being made from are kept for another full period. A version has no frames of its
own and is never swept. Once swept, the event says so (``frames_deleted_at``) and a re-run of it
fails with ``frames_expired``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from video_runner.ports import ObjectSweeper, PredictionStore, Telemetry, VersionStore

log = logging.getLogger(__name__)

#: Keys deleted per S3 call (the API's most) and events read per scan page.
_PAGE = 1000
_EVENTS_PAGE = 100


@dataclass(frozen=True, slots=True)
class RetentionConfig:
    frames_bucket: str
    #: None: frames are kept for ever (``FRAMES_RETENTION_S`` off).
    retention_s: float | None


class FramesSweep:
    """Deletes the frames of events that ended more than the retention ago."""

    def __init__(
        self,
        config: RetentionConfig,
        *,
        store: PredictionStore,
        versions: VersionStore,
        objects: ObjectSweeper,
        telemetry: Telemetry,
    ) -> None:
        self._config = config
        self._store = store
        self._versions = versions
        self._objects = objects
        self._telemetry = telemetry

    async def run_once(self, now: datetime | None = None) -> int:
        """One pass; returns how many events had their frames deleted."""
        if self._config.retention_s is None:
            return 0
        before = (now or datetime.now(UTC)) - timedelta(seconds=self._config.retention_s)
        swept = 0
        after: str | None = None
        while events := await self._versions.frames_kept(
            before, after_id=after, limit=_EVENTS_PAGE
        ):
            for event in events:
                await self.delete_frames(event.event_id)
                swept += 1
            after = events[-1].event_id
        return swept

    async def delete_frames(self, event_id: str) -> int:
        """Delete every frame of ``event_id``, then mark the event; idempotent."""
        prefix = f"frames/{event_id}/"
        deleted = 0
        while keys := await self._objects.keys_under(self._config.frames_bucket, prefix, _PAGE):
            done = await self._objects.delete_keys(self._config.frames_bucket, keys)
            deleted += done
            if done < len(keys):
                break  # some refused: the next pass tries again (the event stays unmarked)
        else:
            await self._store.annotate(event_id, {"frames_deleted_at": datetime.now(UTC)})
        self._telemetry.count("frames_deleted", deleted)
        log.info("frames deleted by retention", extra={"event_id": event_id, "deleted": deleted})
        return deleted
