"""Merges started before ``predictable``: a long video's final JSON is written as its results
come, so that its last result is followed by an assembly of files, not by a read of them all.

The runner announces on ``predictable_events`` that every task of an event is published (a
``published`` notice, keyed by the event like the ``predictable`` one that follows it, so both
reach the same outbox-S3 worker). The worker starts the event's merge in the background: pages
whose results are all stored are written at once, the first one that is not is re-read every
``OUTBOX_MERGE_POLL_S``. The ``predictable`` notice then tells the merge that every result is in,
and the final JSON is assembled from its files.

An early merge is only a head start. One that failed, was abandoned (its event failed) or ran
in another worker (a rebalance moved the partition) is not used: the ``predictable`` notice is
answered with a whole merge, as without it. A merge never used is dropped by the sweep once its
event has left the states that lead to ``ready``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from video_runner.domain.prediction import Prediction
from video_runner.domain.status import Status
from video_runner.errors import MergeAbandoned
from video_runner.ports import PredictionStore
from video_runner.services.merged_output import MergedFrames, ResultsArriving
from video_runner.services.tracking import FrameTracking

log = logging.getLogger(__name__)

#: The states an early merge's event can still reach ``ready`` from.
_STILL_WANTED = frozenset({Status.PROCESSING, Status.PREDICTABLE})


@dataclass(slots=True)
class _Merge:
    folder: Path
    frames: MergedFrames
    arriving: ResultsArriving
    task: asyncio.Task[None]


class EarlyMerges:
    """The early merges of one outbox-S3 worker: at most ``limit`` at once (0: none)."""

    def __init__(
        self,
        store: PredictionStore,
        *,
        work_dir: Path,
        limit: int,
        poll_s: float,
        tracking_of: Callable[[Prediction], FrameTracking | None],
    ) -> None:
        self._store = store
        self._work_dir = work_dir
        self._limit = limit
        self._poll_s = poll_s
        self._tracking_of = tracking_of
        self._merges: dict[str, _Merge] = {}

    def __len__(self) -> int:
        return len(self._merges)

    async def start(self, event_id: str) -> bool:
        """Start merging ``event_id`` if it waits for results and none is merging it here;
        True when a merge was started."""
        if len(self._merges) >= self._limit or event_id in self._merges:
            return False
        prediction = await self._store.get(event_id)
        if prediction is None or not prediction.waits_for_results:
            return False  # predictable already (or gone): its notice gets a whole merge
        folder = Path(tempfile.mkdtemp(prefix="early-merge-", dir=self._work_dir))
        frames = MergedFrames(folder)
        arriving = ResultsArriving(lambda: self._wanted(event_id), poll_s=self._poll_s)
        task = asyncio.create_task(
            frames.write(self._store, prediction, self._tracking_of(prediction), arriving),
            name=f"early-merge-{event_id}",
        )
        merge = _Merge(folder, frames, arriving, task)
        self._merges[event_id] = merge
        task.add_done_callback(lambda done: self._ended(event_id, merge, done))
        log.info("merge started early", extra={"event_id": event_id, "stage": "merge"})
        return True

    async def take(self, event_id: str) -> MergedFrames | None:
        """The frames of ``event_id``'s early merge, once every result is in (the event is
        ``predictable``), or None when there is none to use. The caller assembles the final
        JSON from them, then calls ``release``."""
        merge = self._merges.get(event_id)
        if merge is None:
            return None
        merge.arriving.complete()
        try:
            await asyncio.shield(merge.task)
        except asyncio.CancelledError:
            if not merge.task.cancelled():
                raise  # the caller's own cancellation
            return None
        except Exception:  # noqa: BLE001 - logged by _ended; a whole merge replaces it
            return None
        return merge.frames

    def release(self, event_id: str) -> None:
        """Forget ``event_id``'s early merge and delete its files."""
        merge = self._merges.pop(event_id, None)
        if merge is not None:
            merge.task.cancel()
            shutil.rmtree(merge.folder, ignore_errors=True)

    async def sweep(self) -> int:
        """Drop the finished merges whose event can no longer become ``ready`` here (written
        by another worker, failed); returns how many were dropped."""
        dropped = 0
        for event_id, merge in list(self._merges.items()):
            if merge.task.done() and not await self._wanted(event_id):
                self.release(event_id)
                dropped += 1
        return dropped

    async def close(self) -> None:
        """Stop every merge and delete its files (the worker stops)."""
        tasks = [merge.task for merge in self._merges.values()]
        for event_id in list(self._merges):
            self.release(event_id)
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _wanted(self, event_id: str) -> bool:
        prediction = await self._store.get(event_id)
        return prediction is not None and prediction.status in _STILL_WANTED

    def _ended(self, event_id: str, merge: _Merge, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is None:
            return  # kept for take(); the sweep drops it if it is never taken
        if isinstance(error, MergeAbandoned):
            log.info("early merge abandoned", extra={"event_id": event_id, "stage": "merge"})
        else:
            log.warning(
                "early merge failed; the predictable notice gets a whole merge",
                extra={"event_id": event_id, "stage": "merge", "error": str(error)},
            )
        if self._merges.get(event_id) is merge:
            self.release(event_id)
