"""One extraction per event id, however many copies of its event arrive at once.

A burst of copies of one ``outbox_events`` message (a relay replaying its outbox, a producer
retrying) would otherwise extract, upload and publish the same video once per copy in flight.
Before any work, a copy takes the one-time claim ``{event_id}/extract-{n}`` in the store:

* the copy that wins extracts, and beats a heartbeat on the document
  (``extraction: {claim: n, alive_at}``) every third of ``stale_s`` while it works;
* a copy that loses waits: in the same process for the winner to finish, and resumes the work
  if it raised (a revocation cancels the winner, then may hand this process the same offset
  again); elsewhere by reading the document until its video path is over (it is then a
  duplicate, and its offset can be committed: the work is durable). Meanwhile its offset
  stays uncommitted, like any event's;
* a winner whose work raised keeps its claim in this process, so the retry of its message
  resumes at once;
* a winner that died (its heartbeat unchanged for ``stale_s`` of waiting) leaves its claim to
  the next generation: the copy waiting takes ``extract-{n+1}`` and redoes the work, which is
  idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

from video_runner.errors import PermanentError
from video_runner.ports import PredictionStore


class ExtractionClaims:
    """Runs an event's extraction only in the copy that holds its claim."""

    def __init__(self, store: PredictionStore, stale_s: float, poll_s: float = 0.5) -> None:
        self._store = store
        self._stale_s = stale_s
        self._poll_s = poll_s
        #: Extractions this process runs now, by event id: copies here wait on them.
        self._running: dict[str, asyncio.Event] = {}
        #: Claims this process won whose work raised: its handler's retry resumes them at once.
        self._held: dict[str, int] = {}

    async def run_once(self, event_id: str, work: Callable[[], Awaitable[None]]) -> bool:
        """Run ``work`` if this copy wins the event's extraction; False if another copy did it
        (or does it and will be retried by its own message if it fails)."""
        while (running := self._running.get(event_id)) is not None:
            await running.wait()
            if event_id not in self._held:
                return False  # it finished (or failed the event for good)
            # Its work raised, so nothing durable says the event is done: this copy resumes it.
            # It is the partition's next copy after a revocation cancelled the running one
            # (which is never retried or committed), or a redelivery after any other failure.
        done = asyncio.Event()
        self._running[event_id] = done
        try:
            generation = self._held.pop(event_id, None)
            if generation is None:
                generation = await self._claim(event_id)
            if generation is None:
                return False
            try:
                async with self._heartbeat(event_id, generation):
                    await work()
            except PermanentError:
                raise  # the event fails: nothing will retry it
            except BaseException:
                self._held[event_id] = generation
                raise
            return True
        finally:
            del self._running[event_id]
            done.set()

    async def _claim(self, event_id: str) -> int | None:
        """The generation this copy claimed, or None once the event's video path is over."""
        prediction = await self._store.get(event_id)
        extraction = (prediction.document.get("extraction") if prediction else None) or {}
        generation = int(extraction.get("claim") or 0)
        seen: object = None
        seen_since = time.monotonic()
        while True:
            if await self._store.claim(event_id, f"extract-{generation}"):
                return generation
            prediction = await self._store.get(event_id)
            if prediction is None or prediction.video_path_over:
                return None
            extraction = prediction.document.get("extraction") or {}
            beat = (extraction.get("claim"), extraction.get("alive_at"))
            if beat != seen:
                seen, seen_since = beat, time.monotonic()
            elif time.monotonic() - seen_since > self._stale_s:
                generation = max(generation, int(extraction.get("claim") or 0)) + 1
                continue  # its holder stopped beating: the next generation is free
            await asyncio.sleep(self._poll_s)

    @contextlib.asynccontextmanager
    async def _heartbeat(self, event_id: str, generation: int) -> AsyncIterator[None]:
        # Beats never overlap the work's first and last writes to the same document: FerretDB
        # keeps only one of two concurrent updates of a document, and a beat landing after the
        # event failed would put it back to processing. So the first beat is written before the
        # work starts, and the last one is waited for (never cancelled mid-write) before the
        # caller writes the outcome.
        async def write_beat() -> None:
            await self._store.annotate(
                event_id, {"extraction": {"claim": generation, "alive_at": datetime.now(UTC)}}
            )

        stop = asyncio.Event()

        async def beat() -> None:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self._stale_s / 3)
                if not stop.is_set():
                    await write_beat()

        await write_beat()
        task = asyncio.create_task(beat(), name=f"extraction heartbeat {event_id}")
        try:
            yield
        finally:
            stop.set()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
