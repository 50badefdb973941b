"""Merges started at ``published``: the final JSON is written as results come, assembled at
``predictable``, byte for byte what a whole merge writes; nothing of a merge that is not used
is left behind."""

from __future__ import annotations

import asyncio
import json

from support.fakes import FakeMessage, FakeObjectStore
from support.stack import wait_for
from support.worlds import ResultsWorld, outbox_worker, result_message
from video_runner.domain.status import Status
from video_runner.domain.task_pages import TASKS_PER_PAGE
from video_runner.services.merged_output import write_merged

FRAMES = TASKS_PER_PAGE * 2 + 10  # three pages


def notice(status: str, event_id: str = "ev-1") -> FakeMessage:
    value = json.dumps({"event_id": event_id, "status": status}).encode()
    return FakeMessage(topic="predictable_events", key=event_id.encode(), value=value)


class CountingStore:
    """The store, counting the result lookups (a whole merge makes one per page)."""

    def __init__(self, store) -> None:
        self._store = store
        self.lookups = 0

    def __getattr__(self, name):
        return getattr(self._store, name)

    async def results_of(self, event_id, frame_ids):
        self.lookups += 1
        return await self._store.results_of(event_id, frame_ids)


class FailsOnce(CountingStore):
    """The store, except that the first result lookup fails (the store went away)."""

    async def results_of(self, event_id, frame_ids):
        self.lookups += 1
        if self.lookups == 1:
            raise ConnectionError("store gone")
        return await self._store.results_of(event_id, frame_ids)


async def store_results(world: ResultsWorld, frame_indices: range) -> None:
    await world.path.handle_batch([result_message(i * 5) for i in frame_indices])


async def until(condition) -> None:
    async def holds() -> bool:
        return bool(condition())

    await wait_for(holds, timeout_s=5.0, every_s=0.005)


async def test_an_early_merge_waits_for_results_and_writes_what_a_whole_merge_writes(tmp_path):
    """Started with a page and a half of results in, the merge waits on the second page; the
    rest comes, the event is predictable, and its notice is answered from the early merge's
    files (one lookup, not one a page) with the same bytes as a whole merge."""
    world = ResultsWorld()
    await world.extracted(frames=FRAMES)
    await store_results(world, range(TASKS_PER_PAGE + 20))
    store, objects = CountingStore(world.store), FakeObjectStore()
    work = tmp_path / "work"
    work.mkdir()
    outbox = outbox_worker(
        store, objects, work, keep_frame_documents=True, outbox_merge_poll_s=0.01
    )
    await outbox.handle(notice("published"))
    assert len(outbox.early) == 1
    await until(lambda: store.lookups >= 4)  # page 0, page 1, then its re-reads
    assert world.store.document("ev-1")["status"] == Status.PROCESSING

    await store_results(world, range(TASKS_PER_PAGE + 20, FRAMES))
    prediction = await world.store.get("ev-1")
    assert prediction is not None
    assert prediction.status is Status.PREDICTABLE
    whole = tmp_path / "whole.json"
    await write_merged(world.store, prediction, whole)
    before = store.lookups
    await outbox.handle(notice("predictable"))

    assert objects.objects["videos", "detection/ev-1.json"] == whole.read_bytes()
    assert store.lookups - before <= 2  # the pages still waiting, not all three again
    assert world.store.document("ev-1")["status"] == Status.READY
    assert len(outbox.early) == 0
    assert list(work.iterdir()) == []


async def test_an_early_merge_of_an_event_that_fails_is_abandoned_and_deleted(tmp_path):
    """The event fails while its merge waits: the merge ends, and its files go with it."""
    world = ResultsWorld()
    await world.extracted(frames=FRAMES)
    await store_results(world, range(10))
    outbox = outbox_worker(world.store, FakeObjectStore(), tmp_path, outbox_merge_poll_s=0.01)
    await outbox.handle(notice("published"))
    assert len(outbox.early) == 1
    assert await world.store.transition("ev-1", Status.FAILED, {"error": {"code": "x"}})
    await until(lambda: len(outbox.early) == 0)
    assert list(tmp_path.iterdir()) == []


async def test_an_early_merge_that_failed_leaves_the_notice_to_a_whole_merge(tmp_path):
    """The store fails the early merge's first lookup: the predictable notice still gets the
    complete JSON, from a whole merge."""
    world = ResultsWorld()
    await world.extracted(frames=FRAMES)
    store, objects = FailsOnce(world.store), FakeObjectStore()
    outbox = outbox_worker(store, objects, tmp_path, outbox_merge_poll_s=0.01)
    await outbox.handle(notice("published"))
    await until(lambda: len(outbox.early) == 0)
    await store_results(world, range(FRAMES))
    await outbox.handle(notice("predictable"))
    written = json.loads(objects.objects["videos", "detection/ev-1.json"])
    assert [f["frame_id"] for f in written["frames"]] == [i * 5 for i in range(FRAMES)]
    assert all(len(f["objects"]) == 1 for f in written["frames"])
    assert list(tmp_path.iterdir()) == []


async def test_a_finished_merge_never_used_here_is_dropped_by_the_sweep(tmp_path):
    """Another worker wrote the event (a rebalance moved its partition): once the event is
    ready, this worker's finished early merge and its files are dropped."""
    world = ResultsWorld()
    await world.extracted(frames=FRAMES)
    outbox = outbox_worker(world.store, FakeObjectStore(), tmp_path, outbox_merge_poll_s=0.01)
    await outbox.handle(notice("published"))
    await store_results(world, range(FRAMES))  # predictable; the notice goes elsewhere
    (merge,) = outbox.early._merges.values()
    await asyncio.wait_for(asyncio.shield(merge.task), 5)
    assert await outbox.early.sweep() == 0  # still wanted: the notice may come here yet
    assert await world.store.transition(
        "ev-1", Status.READY, {"output_s3": "s3://videos/detection/ev-1.json"}
    )
    assert await outbox.early.sweep() == 1
    assert len(outbox.early) == 0
    assert list(tmp_path.iterdir()) == []


async def test_no_early_merge_without_room_or_for_an_event_not_waiting_for_results(tmp_path):
    """``OUTBOX_EARLY_MERGES=0`` starts none; nor does a notice of an event already
    predictable, or of one the store does not know."""
    world = ResultsWorld()
    await world.extracted(frames=3)
    none = outbox_worker(world.store, FakeObjectStore(), tmp_path, outbox_early_merges=0)
    await none.handle(notice("published"))
    assert len(none.early) == 0
    await store_results(world, range(3))  # predictable now
    outbox = outbox_worker(world.store, FakeObjectStore(), tmp_path)
    await outbox.handle(notice("published"))
    await outbox.handle(notice("published", "unknown"))
    assert len(outbox.early) == 0
