"""``deps wait``: wait until Kafka, S3 and MongoDB answer, asked through the project's adapters.

Each dependency is checked the way readiness checks it (Kafka: cluster metadata through the
publisher; S3: list buckets; MongoDB: ``ping``), so "up" here means what the services need, not
an open socket. Prints one line per dependency as it answers; exits 0 when all did, 1 when the
timeout passed first (naming what is still down, with its last error).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Mapping

from video_runner import bootstrap
from video_runner.adapters.kafka import KafkaPublisher
from video_runner.runtime import timed_check
from video_runner.settings import load_settings

EXIT_TIMEOUT = 1
#: Between two attempts at one dependency: quick enough for a stack that is coming up.
RETRY_INTERVAL_S = 0.5

Check = Callable[[], Awaitable[None]]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    deps = subparsers.add_parser("deps", help="check the dependencies: Kafka, S3 and MongoDB")
    actions = deps.add_subparsers(dest="action", required=True, metavar="ACTION")
    wait = actions.add_parser("wait", help="wait until Kafka, S3 and MongoDB all answer")
    wait.add_argument(
        "--timeout", type=_seconds, default=60.0, help="seconds to wait for all of them (60)"
    )
    wait.set_defaults(handler=_wait)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return value


def _wait(args: argparse.Namespace) -> int:
    # aiokafka logs every refused connection; the command already prints each dependency's
    # error once per change, so the client's own lines would only bury it.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    return asyncio.run(_wait_for_stack(args.timeout))


async def _wait_for_stack(timeout_s: float) -> int:
    settings = load_settings()
    publisher = bootstrap.publisher(settings, "deps")
    objects = bootstrap.object_store(settings)
    store = bootstrap.prediction_store(settings)
    try:
        down = await wait_for(
            {"kafka": _KafkaCheck(publisher), "s3": objects.ping, "mongodb": store.ping},
            timeout_s,
        )
    finally:
        await publisher.stop()
        await store.close()
        objects.close()
    if down:
        print(
            f"video-runner deps: still down after {timeout_s:g} s: {', '.join(down)}",
            file=sys.stderr,
        )
        return EXIT_TIMEOUT
    return 0


class _KafkaCheck:
    """Starts the publisher on the first attempt that reaches a broker, then asks for metadata."""

    def __init__(self, publisher: KafkaPublisher) -> None:
        self._publisher = publisher
        self._started = False

    async def __call__(self) -> None:
        if not self._started:
            await self._publisher.start()
            self._started = True
        await self._publisher.ping()


async def wait_for(
    checks: Mapping[str, Check], timeout_s: float, *, interval_s: float = RETRY_INTERVAL_S
) -> list[str]:
    """Try every check until it answers or ``timeout_s`` passes; return the names still down."""
    deadline = time.monotonic() + timeout_s
    names = list(checks)
    errors = await asyncio.gather(
        *(_until_up(name, checks[name], deadline, interval_s) for name in names)
    )
    return [name for name, error in zip(names, errors, strict=True) if error is not None]


async def _until_up(name: str, check: Check, deadline: float, interval_s: float) -> str | None:
    """None once ``check`` answers; its last error if the deadline comes first."""
    last_error: str | None = None
    while True:
        # One attempt may use all the time left: cutting a client's start short would only
        # leave it half open, and the deadline bounds the whole wait anyway.
        remaining = max(deadline - time.monotonic(), 0.001)
        report = await timed_check(check, remaining)
        if report["status"] == "up":
            print(f"{name}: up ({report['latency_ms']} ms)", flush=True)
            return None
        error = str(report.get("error", "down"))
        if error != last_error:
            # Only changes are printed: a dependency down for a minute is one line, not 120.
            print(f"{name}: waiting: {error}", file=sys.stderr, flush=True)
            last_error = error
        if time.monotonic() + interval_s >= deadline:
            return error
        await asyncio.sleep(interval_s)
