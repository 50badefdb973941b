"""Start-up retries and periodic jobs, both stopped promptly by the process's stop event."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from video_runner.domain.backoff import backoff_delay
from video_runner.errors import ConfigurationError, RetriableError
from video_runner.runtime.readiness import Service

log = logging.getLogger(__name__)


async def sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less if ``stop`` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def start_with_retries(
    what: str, start: Callable[[], Awaitable[object]], stop: asyncio.Event, service: Service
) -> bool:
    """Start a dependency-facing part, retrying with backoff while a dependency is down.

    A configuration error (a wrong secret) is raised at once: retrying cannot fix it.
    Returns False if asked to stop before it started.
    """
    attempt = 0
    while not stop.is_set():
        try:
            await start()
        except (RetriableError, OSError) as exc:
            delay = backoff_delay(attempt, 0.5, 10.0)
            service.startup_error = f"{what}: {exc}"
            log.warning(
                "dependency not ready, retrying",
                extra={"part": what, "error": str(exc), "delay_s": round(delay, 1)},
            )
            attempt += 1
            await sleep_unless(stop, delay)
        else:
            return True
    return False


async def periodic(
    name: str, interval_s: float, job: Callable[[], Awaitable[object]], stop: asyncio.Event
) -> None:
    """Run ``job`` every ``interval_s`` until ``stop``; failures are logged, never fatal."""
    while not stop.is_set():
        try:
            await job()
        except (RetriableError, ConfigurationError) as exc:
            log.warning("periodic job failed", extra={"job": name, "error": str(exc)})
        except Exception:
            log.exception("periodic job crashed", extra={"job": name})
        await sleep_unless(stop, interval_s)
