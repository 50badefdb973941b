"""The worker runtime: start-up steps, periodic jobs and closers, without any server."""

from __future__ import annotations

import asyncio
import errno
import logging

import pytest

from video_runner.adapters.metrics import PrometheusTelemetry
from video_runner.bootstrap.configs import retry_policy
from video_runner.domain.retry_policy import RetryPolicy
from video_runner.errors import ConfigurationError, DependencyUnavailable
from video_runner.runtime import Consumer, PeriodicJob, Service, Step, Worker
from video_runner.runtime.retries import periodic
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


FAST = RetryPolicy(initial_s=0.001, max_s=0.002, max_attempts=3)


def _steps_failing_with(*failures: BaseException) -> tuple[Step, list[int]]:
    calls: list[int] = []
    pending = list(failures)

    async def start() -> None:
        calls.append(1)
        if pending:
            raise pending.pop(0)

    return Step("dependencies", start), calls


async def test_start_up_waits_out_a_dependency_that_is_down_and_a_full_disk():
    """Kafka not up yet, then a full disk: both pass by themselves, so the step is tried again
    with backoff, and readiness said why meanwhile; then the worker starts."""
    step, calls = _steps_failing_with(
        DependencyUnavailable("kafka", "connection refused"), OSError(errno.ENOSPC, "disk full")
    )
    stop = asyncio.Event()
    errors: list[str | None] = []
    service = _service()

    async def tick() -> None:
        stop.set()

    async def watch() -> None:
        while not stop.is_set():
            errors.append(service.startup_error)
            await asyncio.sleep(0)

    worker = Worker(
        service, steps=[step], consumers=[], retry=FAST, jobs=[PeriodicJob("tick", 0.01, tick)]
    )
    watcher = asyncio.create_task(watch())
    await asyncio.wait_for(worker.run(stop), timeout=10)
    await watcher
    assert worker.service.started.is_set()
    assert len(calls) == 3
    assert any(error and "kafka unavailable" in error for error in errors)
    assert any(error and "disk unavailable" in error for error in errors)


@pytest.mark.parametrize(
    "failure",
    [
        ConfigurationError("a bucket name of our settings is invalid"),
        PermissionError(errno.EACCES, "Permission denied: '/var/lib/video-runner'"),
        KeyError("a bug"),
    ],
    ids=["configuration", "permission-denied", "bug"],
)
async def test_start_up_raises_at_once_what_waiting_cannot_fix(failure):
    """A configuration error (exit 2), a work directory we may not write or a bug is raised on
    the first try, not retried as "dependency not ready"; what had started is still closed."""
    step, calls = _steps_failing_with(failure)
    closed: list[str] = []
    worker = Worker(
        _service(),
        steps=[step],
        consumers=[],
        retry=FAST,
        closers=[lambda: closed.append("store")],
    )
    with pytest.raises(type(failure)):
        await asyncio.wait_for(worker.run(asyncio.Event()), timeout=10)
    assert len(calls) == 1
    assert closed == ["store"]
    assert not worker.service.started.is_set()


async def test_a_periodic_job_runs_on_after_failures_and_logs_a_wait_as_a_warning(caplog):
    """MongoDB down is a warning that names it; a bug is a traceback; the job runs again at its
    next interval either way."""
    failures: list[BaseException] = [DependencyUnavailable("mongodb", "no primary"), KeyError("x")]
    stop = asyncio.Event()
    runs: list[int] = []

    async def job() -> None:
        runs.append(1)
        if failures:
            raise failures.pop(0)
        stop.set()

    with caplog.at_level(logging.WARNING, logger="video_runner.runtime.retries"):
        await asyncio.wait_for(periodic("reaper", 0.001, job, stop, FAST), timeout=10)
    assert len(runs) == 3
    [wait, crash] = caplog.records
    assert (wait.levelno, wait.getMessage(), wait.dependency) == (
        logging.WARNING,
        "periodic job failed",
        "mongodb",
    )
    assert (crash.levelno, crash.getMessage(), crash.failures) == (
        logging.ERROR,
        "periodic job crashed",
        2,
    )
    assert crash.exc_info is not None
