"""Start-up retries and periodic jobs, both decided by the retry policy and stopped promptly by
the process's stop event.

A start-up step waits out a dependency that is not up yet (``start-up`` column of
``domain/retry_policy.py``) and raises anything else at once: a configuration error exits 2, and
an error no table knows (a work directory we may not write, a bug) is a clear crash, not a hang
reported as "dependency not ready". A periodic job runs again at its interval whatever happened;
the policy only says whether its failure is a wait (a warning) or a crash (a traceback).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from video_runner.adapters.error_classes import classify_escaped
from video_runner.domain.retry_policy import Decision, RetryPolicy, Work, dependency_of
from video_runner.runtime.readiness import Service

log = logging.getLogger(__name__)


async def sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less if ``stop`` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def start_with_retries(
    what: str,
    start: Callable[[], Awaitable[object]],
    stop: asyncio.Event,
    service: Service,
    retry: RetryPolicy,
) -> bool:
    """Start a dependency-facing part, waiting out a dependency that is down, with backoff.

    Anything the policy does not wait out at start-up is raised as it came. Returns False if
    asked to stop before it started.
    """
    tries = retry.tries(Work.START_UP)
    while not stop.is_set():
        try:
            await start()
        except Exception as exc:
            error = classify_escaped(exc)
            if tries.failed(error) is not Decision.WAIT_OUT:
                raise
            delay = tries.delay()
            service.startup_error = f"{what}: {error}"
            log.warning(
                "dependency not ready, retrying",
                extra={
                    "part": what,
                    "dependency": dependency_of(error),
                    "error": str(error),
                    "delay_s": round(delay, 1),
                },
            )
            await sleep_unless(stop, delay)
        else:
            return True
    return False


async def periodic(
    name: str,
    interval_s: float,
    job: Callable[[], Awaitable[object]],
    stop: asyncio.Event,
    retry: RetryPolicy,
) -> None:
    """Run ``job`` every ``interval_s`` until ``stop``; failures are logged, never fatal."""
    failures = 0
    while not stop.is_set():
        try:
            await job()
        except Exception as exc:
            failures += 1
            error = classify_escaped(exc)
            decision = retry.decide(error, work=Work.PERIODIC_JOB, failures=failures)
            extra = {"job": name, "failures": failures}
            if decision is Decision.WAIT_OUT:
                extra |= {"dependency": dependency_of(error), "error": str(error)}
                log.warning("periodic job failed", extra=extra)
            else:
                log.exception("periodic job crashed", extra=extra)
        else:
            failures = 0
        await sleep_unless(stop, interval_s)
