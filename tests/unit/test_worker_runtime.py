"""The worker runtime: start-up steps, periodic jobs and closers, without any server."""

from __future__ import annotations

import asyncio

from video_runner.adapters.metrics import PrometheusTelemetry
from video_runner.bootstrap.configs import retry_policy
from video_runner.errors import DependencyUnavailable
from video_runner.runtime import Consumer, PeriodicJob, Service, Step, Worker
from video_runner.settings import load_settings

RETRY = retry_policy(load_settings())


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
        retry=RETRY,
        jobs=[PeriodicJob("tick", 0.01, tick)],
        closers=[broken, store],
    )
    await asyncio.wait_for(worker.run(stop), timeout=10)
    assert worker.service.started.is_set()
    assert ticks
    assert closed == ["broken", "store"]


class _FakeLoop:
    """A consumer loop whose start succeeds or, like a broker that is down, fails."""

    def __init__(self, topic: str, *, down: bool, stop: asyncio.Event) -> None:
        self.topic = topic
        self.down = down
        self.stop = stop
        self.closed = False

    async def start(self) -> None:
        if self.down:
            self.stop.set()  # the operator gives up while Kafka is down
            raise DependencyUnavailable("kafka", "connection refused")

    async def close(self) -> None:
        self.closed = True


async def test_a_stop_during_start_up_still_closes_what_had_started():
    """The first consumer started, the second waits for Kafka when the stop comes: the process
    returns without starting work, and the started consumer and every closer are closed."""
    stop = asyncio.Event()
    started = _FakeLoop("outbox_events", down=False, stop=stop)
    waiting = _FakeLoop("inference_results", down=True, stop=stop)
    closed: list[str] = []
    worker = Worker(
        _service(),
        steps=[Step("dependencies", lambda: asyncio.sleep(0))],
        consumers=[Consumer(started, 1.0), Consumer(waiting, 1.0)],  # type: ignore[arg-type]
        retry=RETRY,
        closers=[lambda: closed.append("store")],
    )
    await asyncio.wait_for(worker.run(stop), timeout=10)
    assert not worker.service.started.is_set()
    assert started.closed
    assert closed == ["store"]
