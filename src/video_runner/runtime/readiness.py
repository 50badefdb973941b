"""What a running worker tells the HTTP surface: its role, its dependency checks, whether it has
started, and its consumers' liveness (``/health/ready``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from video_runner.adapters.kafka import ConsumerLoop
from video_runner.adapters.metrics import PrometheusTelemetry
from video_runner.ports import PredictionStore
from video_runner.services.detection_reads import DetectionReader
from video_runner.services.track_reads import TrackReader
from video_runner.settings import Settings

Check = Callable[[], Awaitable[None]]
#: A poll loop silent for this long is reported down (it polls every fraction of a second).
POLL_STALL_S = 60.0
CHECK_TIMEOUT_S = 3.0


async def timed_check(check: Check, timeout_s: float) -> dict[str, Any]:
    """Run one dependency check; report its status and latency, never raise."""
    started = time.monotonic()
    error: str | None
    try:
        await asyncio.wait_for(check(), timeout=timeout_s)
    except TimeoutError:
        status, error = "down", f"no answer within {timeout_s:.0f} s"
    except Exception as exc:  # noqa: BLE001 - a health check reports whatever went wrong
        status, error = "down", f"{type(exc).__name__}: {exc}"
    else:
        status, error = "up", None
    latency_ms = round((time.monotonic() - started) * 1000, 1)
    report: dict[str, Any] = {"status": status, "latency_ms": latency_ms}
    if error is not None:
        report["error"] = error[:300]
    return report


@dataclass
class Service:
    """A running process's parts that the HTTP surface and the CLI need."""

    role: str
    settings: Settings
    telemetry: PrometheusTelemetry
    checks: dict[str, Check]
    store: PredictionStore | None = None
    #: What the dashboard reads, where the process serves one (the runner, DASHBOARD_ENABLED).
    dashboard: DetectionReader | None = None
    #: The dashboard's reader of tracks and JSON Lines, from the final JSON in S3.
    tracks: TrackReader | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)
    startup_error: str | None = None
    loops: list[ConsumerLoop] = field(default_factory=list)

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        names = list(self.checks)
        reports = await asyncio.gather(
            *(timed_check(self.checks[n], CHECK_TIMEOUT_S) for n in names)
        )
        checks = dict(zip(names, reports, strict=True))
        for loop in self.loops:
            # A consumer that stopped polling (the aiokafka hang after a broker restart) is as
            # bad as a broker that is down: the watchdog reports it.
            idle_s = time.monotonic() - loop.stats.last_poll
            healthy = not self.started.is_set() or idle_s < POLL_STALL_S
            checks[f"consumer:{loop.topic}"] = {
                "status": "up" if healthy else "down",
                "in_flight": loop.stats.in_flight,
                "seconds_since_poll": round(idle_s, 1),
                # What its work is waiting out now (a dependency, "settings"): the consumer
                # still polls, so it is up, but this is why its lag grows.
                "waiting_for": sorted(loop.stats.waiting_for),
            }
        reports = list(checks.values())
        ready = self.started.is_set() and all(r["status"] == "up" for r in reports)
        body: dict[str, Any] = {
            "status": "ready" if ready else "not_ready",
            "service": self.role,
            "started": self.started.is_set(),
            "checks": checks,
        }
        if self.startup_error:
            body["startup_error"] = self.startup_error
        return ready, body
