"""Writing the final JSON from the store: pages in order, one read ahead, nothing left behind."""

from __future__ import annotations

import asyncio
import json

import pytest

from support.worlds import ResultsWorld, result_message
from video_runner.services.merged_output import write_merged


class _SecondPageHangs:
    """The store, except that task page 1 never answers (a store slow on the read ahead)."""

    def __init__(self, store) -> None:
        self._store = store

    async def read_task_page(self, event_id, index):
        if index == 1:
            await asyncio.Event().wait()
        return await self._store.read_task_page(event_id, index)

    async def results_of(self, event_id, frame_ids):
        return await self._store.results_of(event_id, frame_ids)


class _LinkFails:
    def link(self, _merged):
        raise ValueError("tracker broke")


async def test_a_merge_reads_every_page_in_order_with_each_frame_once(tmp_path):
    """Three task pages, read one ahead: the frames come out sorted, each once."""
    world = ResultsWorld()
    await world.extracted(frames=150)
    await world.path.handle_batch([result_message(i * 5) for i in range(150)])
    prediction = await world.store.get("ev-1")
    summary = await write_merged(world.store, prediction, tmp_path / "out.json")
    merged = json.loads((tmp_path / "out.json").read_text())
    assert summary.frames == 150
    assert [f["frame_id"] for f in merged["frames"]] == [i * 5 for i in range(150)]


async def test_a_merge_that_fails_mid_way_leaves_no_read_ahead_running(tmp_path):
    """The first page's writing raises while the second page is being read: the error comes
    out, and the read ahead is cancelled and waited for, not left running."""
    world = ResultsWorld()
    await world.extracted(frames=100)  # two pages
    prediction = await world.store.get("ev-1")
    with pytest.raises(ValueError, match="tracker broke"):
        await write_merged(
            _SecondPageHangs(world.store), prediction, tmp_path / "out.json", tracking=_LinkFails()
        )
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert others == []
