"""Services of the local stack for the benchmarks: the project's processes, their readiness,
metrics and memory, and the store's view of an event's progress."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.stack import ServiceProcess
from video_runner.settings import Settings


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def say(line: str = "") -> None:
    print(line, flush=True)


# -- services ------------------------------------------------------------------------------


@contextmanager
def services(
    settings: Settings, work: Path, *, inference: int = 0, outbox: bool = True
) -> Iterator[list[ServiceProcess]]:
    """The runner, ``inference`` inference workers and the outbox-S3 worker, as processes."""
    work.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        started = [ServiceProcess("serve", settings, work / "runner.log")]
        for n in range(inference):
            port = str(settings.inference_http_port + 1 + n)
            started.append(
                ServiceProcess(
                    "inference", settings, work / f"inference-{n}.log", INFERENCE_HTTP_PORT=port
                )
            )
        if outbox:
            started.append(ServiceProcess("outbox-s3", settings, work / "outbox.log"))
        for service in started:
            stack.callback(service.stop)
        yield started


def ports_of(settings: Settings, inference: int, *, outbox: bool = True) -> list[int]:
    return [
        settings.http_port,
        *(settings.inference_http_port + 1 + n for n in range(inference)),
        *([settings.outbox_http_port] if outbox else []),
    ]


async def until_ready(ports: list[int], timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as http:
        for port in ports:
            while True:
                try:
                    async with http.get(f"http://127.0.0.1:{port}/health/ready") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"service on port {port} not ready")
                await asyncio.sleep(0.2)


async def metric_total(port: int, name: str) -> float:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as r:
        text = await r.text()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(f"video_runner_{name}")
    )


def peak_rss_mb(service: ServiceProcess) -> float:
    """VmHWM: the process's peak resident memory so far."""
    for line in Path(f"/proc/{service.process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def status_times(store: Any, event_id: str, timeout_s: float) -> tuple[float, float]:  # noqa: ANN401
    """Monotonic times at which the event was first seen predictable (or later) and ready."""
    predictable = ready = None
    deadline = time.monotonic() + timeout_s
    while ready is None:
        prediction = await store.get(event_id)
        status = None if prediction is None else prediction.status.value
        now = time.monotonic()
        if status in {"predictable", "ready"} and predictable is None:
            predictable = now
        if status == "ready":
            ready = now
        if prediction is not None and status == "failed":
            raise RuntimeError(f"{event_id} failed: {prediction.error}")
        if now > deadline:
            raise TimeoutError(f"{event_id} is {status} after {timeout_s} s")
        await asyncio.sleep(0.01)
    return predictable or ready, ready
