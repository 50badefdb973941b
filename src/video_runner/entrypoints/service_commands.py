"""``serve``, ``inference`` and ``outbox-s3``: the long-running processes.

Each starts its HTTP surface first (so readiness can say "not ready" while dependencies are
down), then its work; SIGTERM or SIGINT stops fetching, lets in-flight work finish within a
bound, closes the clients and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable
from typing import Protocol

from video_runner import bootstrap
from video_runner.adapters.logs import configure_logging
from video_runner.entrypoints.http import start_http
from video_runner.errors import ConfigurationError
from video_runner.runtime import Service
from video_runner.settings import Settings, load_settings

log = logging.getLogger(__name__)


class _Process(Protocol):
    service: Service

    async def run(self, stop: asyncio.Event) -> None: ...


def add_parsers(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = subparsers.add_parser("serve", help="run the runner service (video and results paths)")
    serve.add_argument("--port", type=int, help="HTTP port (default: HTTP_PORT, 8002)")
    serve.set_defaults(handler=_serve)
    inference = subparsers.add_parser("inference", help="run an inference worker")
    inference.add_argument(
        "--port", type=int, help="HTTP port (default: INFERENCE_HTTP_PORT, 8003)"
    )
    inference.set_defaults(handler=_inference)
    outbox = subparsers.add_parser("outbox-s3", help="run an outbox-S3 worker")
    outbox.add_argument("--port", type=int, help="HTTP port (default: OUTBOX_HTTP_PORT, 8004)")
    outbox.set_defaults(handler=_outbox)


def _serve(args: argparse.Namespace) -> int:
    settings = load_settings()
    return _run(settings, bootstrap.Runner(settings), args.port or settings.http_port)


def _inference(args: argparse.Namespace) -> int:
    settings = load_settings()
    return _run(settings, bootstrap.Inference(settings), args.port or settings.inference_http_port)


def _outbox(args: argparse.Namespace) -> int:
    settings = load_settings()
    return _run(settings, bootstrap.Outbox(settings), args.port or settings.outbox_http_port)


def _run(settings: Settings, process: _Process, port: int) -> int:
    configure_logging(settings.log_level, settings.log_format, bootstrap.secrets_of(settings))
    try:
        asyncio.run(_main(settings, process, port))
    except ConfigurationError as exc:
        log.critical("configuration error", extra={"error": str(exc)})
        print(f"video-runner: configuration error: {exc}", file=sys.stderr)
        return 2
    return 0


async def _main(settings: Settings, process: _Process, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _stopper(stop, signum))
    http = await start_http(process.service, settings.http_host, port)
    log.info(
        "http listening",
        extra={"host": settings.http_host, "port": port, "service": process.service.role},
    )
    try:
        await process.run(stop)
    finally:
        await http.cleanup()
        log.info("stopped", extra={"service": process.service.role})


def _stopper(stop: asyncio.Event, signum: int) -> Callable[[], None]:
    def handle() -> None:
        if not stop.is_set():
            log.info("signal received, stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()

    return handle
