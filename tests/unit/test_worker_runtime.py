"""The worker runtime: start-up steps, periodic jobs and closers, without any server."""

from __future__ import annotations

import asyncio

from video_runner.adapters.metrics import PrometheusTelemetry
from video_runner.runtime import PeriodicJob, Service, Step, Worker
from video_runner.settings import load_settings


def _service() -> Service:
    return Service(
        role="runner", settings=load_settings(), telemetry=PrometheusTelemetry(), checks={}
    )


async def test_every_closer_runs_when_one_of_them_fails():
    """A closer that raises (a broker already gone) leaves the ones after it to run."""
    closed: list[str] = []

    def broken() -> None:
        closed.append("broken")
        raise RuntimeError("already gone")

    async def store() -> None:
        closed.append("store")

    stop = asyncio.Event()
    ticks: list[int] = []

    async def tick() -> None:
        ticks.append(1)
        stop.set()

    worker = Worker(
        _service(),
        steps=[Step("dependencies", lambda: asyncio.sleep(0))],
        consumers=[],
        jobs=[PeriodicJob("tick", 0.01, tick)],
        closers=[broken, store],
    )
    await asyncio.wait_for(worker.run(stop), timeout=10)
    assert worker.service.started.is_set()
    assert ticks
    assert closed == ["broken", "store"]
