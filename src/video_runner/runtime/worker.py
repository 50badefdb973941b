"""One worker runtime for every long-running process, shaped like arq's worker.

A ``Worker`` is declared, not written: its start-up steps (each retried while a dependency is
down, as the retry policy says), its consumer loops (each with its drain bound), its periodic
jobs and what to close at the end. ``run`` starts the steps in order, then the consumers, marks
the service started, runs the consumers and jobs until ``stop``, drains, and closes. Consumer
lag and retries are reported for every consumer, so no process forgets them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from video_runner.adapters.kafka import ConsumerLoop
from video_runner.adapters.metrics import PrometheusTelemetry
from video_runner.domain.retry_policy import RetryPolicy
from video_runner.runtime.readiness import Service
from video_runner.runtime.retries import periodic, start_with_retries

log = logging.getLogger(__name__)

#: How often consumer lag, retries and in-flight work are reported.
LAG_INTERVAL_S = 5.0

Job = Callable[[], Awaitable[object]]
Closer = Callable[[], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class Step:
    """A start-up step: retried with backoff while a dependency is down."""

    name: str
    run: Job


@dataclass(frozen=True, slots=True)
class Consumer:
    """A consumer loop and how long it may drain on stop."""

    loop: ConsumerLoop
    drain_timeout_s: float


@dataclass(frozen=True, slots=True)
class PeriodicJob:
    """A job run every ``interval_s`` while the worker runs; its failures are never fatal."""

    name: str
    interval_s: float
    run: Job


@dataclass
class Worker:
    """A process's work: start-up steps, consumers, periodic jobs and closers, run to ``stop``."""

    service: Service
    steps: Sequence[Step]
    consumers: Sequence[Consumer]
    #: Decides the failures of the start-up steps and the periodic jobs (the consumers' own
    #: policy is in their loops).
    retry: RetryPolicy
    jobs: Sequence[PeriodicJob] = ()
    #: Called in order once the consumers and jobs are done, sync or async.
    closers: Sequence[Closer] = ()
    #: Extra fields of the "started" log line.
    started_log: dict[str, Any] = field(default_factory=dict)

    @property
    def telemetry(self) -> PrometheusTelemetry:
        return self.service.telemetry

    async def run(self, stop: asyncio.Event) -> None:
        """Start, work until ``stop`` is set, drain and close. Stopped while starting, it closes
        what had started (a consumer, the producer's connections) and returns."""
        try:
            if not await self._start(stop):
                return
            self.service.started.set()
            self.service.startup_error = None
            log.info("worker started", extra={"service": self.service.role, **self.started_log})
            async with asyncio.TaskGroup() as group:
                for consumer in self.consumers:
                    group.create_task(
                        consumer.loop.run(stop, drain_timeout_s=consumer.drain_timeout_s)
                    )
                for job in (*self.jobs, PeriodicJob("lag", LAG_INTERVAL_S, self._report_lag)):
                    group.create_task(periodic(job.name, job.interval_s, job.run, stop, self.retry))
        finally:
            await self._close()

    async def _close(self) -> None:
        # Every closer runs: one that fails (a broker already gone) must not keep the rest open.
        # Consumers first: a loop that ran has closed its own; one stopped at start-up has not.
        for close in (*(c.loop.close for c in self.consumers), *self.closers):
            try:
                result = close()
                if result is not None:
                    await result
            except Exception:
                log.exception("closing failed", extra={"service": self.service.role})

    async def _start(self, stop: asyncio.Event) -> bool:
        steps = [
            *self.steps,
            *(Step(f"consumer {c.loop.topic}", c.loop.start) for c in self.consumers),
        ]
        for step in steps:
            if not await start_with_retries(step.name, step.run, stop, self.service, self.retry):
                return False
        return True

    async def _report_lag(self) -> None:
        for consumer in self.consumers:
            loop = consumer.loop
            if not loop.is_started:
                continue
            # Retries wait a dependency out without limit: this is how an operator sees them.
            self.telemetry.gauge("consumer_retries", loop.stats.retries, topic=loop.topic)
            for partition, lag in loop.lag().items():
                self.telemetry.gauge(
                    "consumer_lag", lag, topic=loop.topic, partition=str(partition)
                )
