"""Batches of uploaded frames' tasks: full ones, or what came within the linger of the first."""

from __future__ import annotations

import asyncio

from video_runner.domain.video import ExtractedFrame
from video_runner.services.task_publication import DONE, TaskBatches


def frame(frame_id: int) -> ExtractedFrame:
    return ExtractedFrame(
        frame_id=frame_id, timestamp_ms=frame_id * 40, width=4, height=4, jpeg=b""
    )


def ids(batch: list[ExtractedFrame] | None) -> list[int] | None:
    return None if batch is None else [f.frame_id for f in batch]


async def test_frames_already_uploaded_go_out_in_batches_of_the_size():
    """Frames queued faster than the linger fill whole batches; the rest goes at the end."""
    queue: asyncio.Queue[ExtractedFrame | None] = asyncio.Queue()
    for i in range(7):
        queue.put_nowait(frame(i))
    queue.put_nowait(DONE)
    batches = TaskBatches(queue, size=3, linger_s=30.0)
    assert [ids(await batches.next()) for _ in range(4)] == [[0, 1, 2], [3, 4, 5], [6], None]


async def test_a_batch_that_does_not_fill_up_goes_out_after_the_linger():
    """One frame and nothing after it is published once its linger is up, not held for more."""
    queue: asyncio.Queue[ExtractedFrame | None] = asyncio.Queue()
    queue.put_nowait(frame(0))
    batches = TaskBatches(queue, size=32, linger_s=0.05)
    assert ids(await batches.next()) == [0]
    batches.close()


async def test_the_end_marker_sends_the_last_batch_without_waiting_for_the_linger():
    """The last frames of a video go out at once: the end marker closes the batch."""
    queue: asyncio.Queue[ExtractedFrame | None] = asyncio.Queue()
    batches = TaskBatches(queue, size=32, linger_s=3600.0)

    async def feed() -> None:
        await queue.put(frame(0))
        await asyncio.sleep(0.01)
        await queue.put(frame(5))
        await queue.put(DONE)

    feeding = asyncio.create_task(feed())
    batch = await asyncio.wait_for(batches.next(), timeout=10)
    await feeding
    assert ids(batch) == [0, 5]
    assert await batches.next() is None


async def test_no_frame_is_lost_when_a_linger_ends_while_waiting_for_the_next():
    """A wait that outlives its batch's linger hands its frame to the next batch: every frame
    comes out once, in order, whatever the timing."""
    queue: asyncio.Queue[ExtractedFrame | None] = asyncio.Queue()
    batches = TaskBatches(queue, size=4, linger_s=0.005)

    async def feed() -> None:
        for i in range(40):
            await queue.put(frame(i))
            await asyncio.sleep(0.002 * (i % 5))
        await queue.put(DONE)

    feeding = asyncio.create_task(feed())
    seen: list[int] = []
    sizes: list[int] = []
    while (batch := await batches.next()) is not None:
        sizes.append(len(batch))
        seen.extend(ids(batch) or [])
    await feeding
    assert seen == list(range(40))
    assert max(sizes) <= 4


async def test_without_a_linger_whatever_is_uploaded_goes_out_at_once():
    """``PUBLISH_LINGER_MS=0``: a batch is what the queue holds, never a wait for more."""
    queue: asyncio.Queue[ExtractedFrame | None] = asyncio.Queue()
    queue.put_nowait(frame(0))
    queue.put_nowait(frame(5))
    batches = TaskBatches(queue, size=32, linger_s=0.0)
    assert ids(await batches.next()) == [0, 5]
    queue.put_nowait(frame(10))
    assert ids(await batches.next()) == [10]
    batches.close()
