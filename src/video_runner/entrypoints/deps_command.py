"""``deps wait``: wait until Kafka, S3 and MongoDB answer, asked through the project's adapters.

Each dependency is checked the way readiness checks it (Kafka: cluster metadata through the
publisher; S3: list buckets; MongoDB: ``ping``), so "up" here means what the services need, not
an open socket. Prints one line per dependency as it answers; exits 0 when all did, 1 when the
timeout passed first (naming what is still down, with its last error).

``deps wait s3 mongodb`` waits for those only; ``--create-buckets`` also makes S3 create
``BUCKET_VIDEOS`` and ``BUCKET_FRAMES`` if they are missing (S3 is up only once both exist).
The local stack (tools/stack/stack.sh) waits for its servers with this command.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol

from video_runner import bootstrap
from video_runner.ports import ObjectStore
from video_runner.runtime import timed_check
from video_runner.settings import Settings, load_settings

EXIT_TIMEOUT = 1
#: Between two attempts at one dependency: quick enough for a stack that is coming up.
RETRY_INTERVAL_S = 0.5
#: The dependencies, in the order they are reported.
DEPENDENCIES = ("kafka", "s3", "mongodb")

Check = Callable[[], Awaitable[None]]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    deps = subparsers.add_parser("deps", help="check the dependencies: Kafka, S3 and MongoDB")
    actions = deps.add_subparsers(dest="action", required=True, metavar="ACTION")
    wait = actions.add_parser("wait", help="wait until Kafka, S3 and MongoDB all answer")
    wait.add_argument(
        "names",
        nargs="*",
        type=_dependency,
        metavar="DEPENDENCY",
        help=f"wait only for these ({', '.join(DEPENDENCIES)}; default: all)",
    )
    wait.add_argument(
        "--timeout", type=_seconds, default=60.0, help="seconds to wait for all of them (60)"
    )
    wait.add_argument(
        "--create-buckets",
        action="store_true",
        help="create BUCKET_VIDEOS and BUCKET_FRAMES if missing (S3 is up once both exist)",
    )
    wait.set_defaults(handler=wait_command)


def _dependency(text: str) -> str:
    # A type, not ``choices``: argparse checks an empty ``nargs="*"`` list against choices.
    if text not in DEPENDENCIES:
        raise argparse.ArgumentTypeError(
            f"unknown dependency {text!r} (expected {', '.join(DEPENDENCIES)})"
        )
    return text


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return value


def wait_command(args: argparse.Namespace) -> int:
    """``deps wait``: the exit status of waiting for the named dependencies."""
    # aiokafka logs every refused connection; the command already prints each dependency's
    # error once per change, so the client's own lines would only bury it.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    names = [name for name in DEPENDENCIES if not args.names or name in args.names]
    return asyncio.run(_wait_for_stack(names, args.timeout, create_buckets=args.create_buckets))


async def _wait_for_stack(
    names: Sequence[str], timeout_s: float, *, create_buckets: bool = False
) -> int:
    settings = load_settings()
    async with contextlib.AsyncExitStack() as clients:
        checks = _checks(settings, names, clients, create_buckets=create_buckets)
        down = await wait_for(checks, timeout_s)
    if down:
        print(
            f"video-runner deps: still down after {timeout_s:g} s: {', '.join(down)}",
            file=sys.stderr,
        )
        return EXIT_TIMEOUT
    return 0


def _checks(
    settings: Settings,
    names: Sequence[str],
    clients: contextlib.AsyncExitStack,
    *,
    create_buckets: bool,
) -> dict[str, Check]:
    """The check of each dependency in ``names``, its client closed when ``clients`` closes."""
    checks: dict[str, Check] = {}
    if "kafka" in names:
        publisher = bootstrap.publisher(settings, "deps")
        clients.push_async_callback(publisher.stop)
        checks["kafka"] = _KafkaCheck(publisher)
    if "s3" in names:
        objects = bootstrap.object_store(settings)
        clients.callback(objects.close)
        buckets = (settings.bucket_videos, settings.bucket_frames) if create_buckets else ()
        checks["s3"] = _S3Check(objects, buckets)
    if "mongodb" in names:
        store = bootstrap.prediction_store(settings)
        clients.push_async_callback(store.close)
        checks["mongodb"] = store.ping
    return checks


class _S3Check:
    """Lists the buckets, then creates any of ``buckets`` that is missing (idempotent)."""

    def __init__(self, objects: ObjectStore, buckets: Sequence[str]) -> None:
        self._objects = objects
        self._buckets = tuple(dict.fromkeys(buckets))

    async def __call__(self) -> None:
        await self._objects.ping()
        for bucket in self._buckets:
            await self._objects.ensure_bucket(bucket)


class _StartablePublisher(Protocol):
    async def start(self) -> None: ...

    async def ping(self) -> None: ...


class _KafkaCheck:
    """Starts the publisher on the first attempt that reaches a broker, then asks for metadata."""

    def __init__(self, publisher: _StartablePublisher) -> None:
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
