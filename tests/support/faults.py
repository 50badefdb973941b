"""Fault injection on the local stack, and the checks every fault case must end with.

Servers are hit through their pid files (``.stack/pids``) and brought back with ``stack.sh
start-one``, never ``down``: other tests share the stack. :func:`restored` guarantees that a
server is running and unpaused when a case ends, whatever happened inside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from support.stack import (
    REPO,
    ServiceProcess,
    free_port,
    partitions_now,
    publish,
    read_topic,
    submit_video,
)
from video_runner import bootstrap
from video_runner.settings import Settings

STACK_SH = REPO / "tools" / "stack" / "stack.sh"
#: The stack's state (``.stack``, or ``STACK_DIR`` as its env file says: the fault stack's).
STACK_DIR = Path(os.environ.get("STACK_DIR") or REPO / ".stack")
PIDS = STACK_DIR / "pids"
FINISHED = {"ready", "failed"}


# --- servers ----------------------------------------------------------------------------------


def server_pid(name: str) -> int:
    """The pid of stack server ``name`` (``kafka``, ``s3``, ``mongo``) from its pid file."""
    return int((PIDS / f"{name}.pid").read_text().strip())


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def server_alive(name: str) -> bool:
    try:
        return _alive(server_pid(name))
    except (FileNotFoundError, ValueError):
        return False


def kill_server(name: str) -> None:
    """SIGKILL the server (no shutdown hook runs), and wait until the process is gone."""
    pid = server_pid(name)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)


def pause_server(name: str) -> None:
    """SIGSTOP: the server keeps its sockets open and answers nothing, like a hung machine."""
    os.kill(server_pid(name), signal.SIGSTOP)


def resume_server(name: str) -> None:
    with contextlib.suppress(ProcessLookupError, FileNotFoundError, ValueError):
        os.kill(server_pid(name), signal.SIGCONT)


def start_server(name: str) -> None:
    """``stack.sh start-one``: starts it if it is not running and waits until it answers."""
    subprocess.run(["bash", str(STACK_SH), "start-one", name], check=True, cwd=REPO, timeout=240)


def stop_server(name: str) -> None:
    """``stack.sh stop-one``: SIGTERM (a broker's controlled shutdown), SIGKILL after its grace."""
    subprocess.run(["bash", str(STACK_SH), "stop-one", name], check=True, cwd=REPO, timeout=120)


@contextlib.contextmanager
def restored(name: str) -> Iterator[None]:
    """Whatever the case does to server ``name``, it runs and is unpaused afterwards."""
    try:
        yield
    finally:
        resume_server(name)
        if not server_alive(name):
            start_server(name)


async def kafka_serves_groups(settings: Settings, timeout_s: float = 120.0) -> None:
    """Wait until a consumer group can consume and commit again after a broker restart: the
    group coordinator loads after the metadata already answers."""
    topic = f"settle-{settings.group_runner}"
    await publish(settings, topic, None, b"x")
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=f"settle-{settings.group_runner}-{time.monotonic_ns()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        await asyncio.wait_for(consumer.getone(), timeout=timeout_s)
        await consumer.commit()
    finally:
        await consumer.stop()


# --- HTTP ---------------------------------------------------------------------------------------


def http_get(port: int, path: str) -> tuple[int, Any]:
    """GET a local URL: (status, JSON or text); status 0 when nothing listens."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            status, data = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, data = error.code, error.read()
    except (urllib.error.URLError, OSError) as error:
        return 0, str(error)
    try:
        return status, json.loads(data)
    except ValueError:
        return status, data.decode(errors="replace")


def metric_total(port: int, name: str) -> float:
    """The sum of every sample of metric ``name`` (all labels) a service exposes now."""
    status, text = http_get(port, "/metrics")
    if status != 200 or not isinstance(text, str):
        return math.nan
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in {" ", "{"}:
            total += float(line.rsplit(" ", 1)[1])
    return total


# --- the services under test ------------------------------------------------------------------


class RunnerProcess(ServiceProcess):
    """A ``video-runner serve`` replica on its own HTTP port."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.port = free_port()
        super().__init__("serve", settings, log_path, HTTP_PORT=str(self.port))


@dataclass
class System:
    """The services as processes: runner replicas, an inference worker, an outbox-S3 worker."""

    settings: Settings
    logs: Path
    runners: list[RunnerProcess] = field(default_factory=list)
    others: list[ServiceProcess] = field(default_factory=list)
    started: int = 0

    def start(self, runners: int = 2) -> None:
        settings = self.settings
        self.others = [
            ServiceProcess("inference", settings, self.logs / "inference.log"),
            ServiceProcess("outbox-s3", settings, self.logs / "outbox.log"),
        ]
        for _ in range(runners):
            self.add_runner()

    def add_runner(self) -> RunnerProcess:
        self.started += 1
        runner = RunnerProcess(self.settings, self.logs / f"runner-{self.started}.log")
        self.runners.append(runner)
        return runner

    def stop(self) -> None:
        for process in self.runners + self.others:
            process.stop()

    @property
    def ports(self) -> dict[str, int]:
        named = {f"runner-{i}": r.port for i, r in enumerate(self.runners)}
        named["inference"] = self.settings.inference_http_port
        named["outbox"] = self.settings.outbox_http_port
        return named

    def ready_count(self) -> float:
        return metric_total(self.settings.outbox_http_port, "video_runner_events_ready_total")

    async def status(self, event_id: str) -> dict[str, Any] | None:
        """The status view of ``event_id`` from any live runner, or None if none knows it."""
        for runner in self.runners:
            if runner.process.poll() is not None:
                continue
            code, body = await asyncio.to_thread(http_get, runner.port, f"/predictions/{event_id}")
            if code == 200 and isinstance(body, dict):
                return body
        return None

    async def wait_status(
        self, event_id: str, until: Any, timeout_s: float, every_s: float = 0.2
    ) -> dict[str, Any]:
        """Poll the status view until ``until(view)``; fail with the last view seen."""
        deadline = time.monotonic() + timeout_s
        view: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            view = await self.status(event_id)
            if view is not None and until(view):
                return view
            await asyncio.sleep(every_s)
        raise AssertionError(f"{event_id}: condition not met in {timeout_s} s, last view {view}")

    async def wait_finished(self, event_id: str, timeout_s: float) -> dict[str, Any]:
        return await self.wait_status(event_id, lambda v: v["status"] in FINISHED, timeout_s, 0.5)

    def runner_that_logged(self, event_id: str, message: str) -> RunnerProcess | None:
        """The live runner whose log has a ``message`` line for ``event_id``, if any.

        The log, not a metric: gauges are refreshed every few seconds, a short video's
        extraction lasts less than one.
        """
        for runner in self.runners:
            if runner.process.poll() is None and logged(runner.log_path, event_id, message):
                return runner
        return None

    def retried(self, what: str) -> int:
        """How many times the services logged a retriable failure whose error says ``what``
        (``"put s3"``, ``"download s3"``): proof that a fault was felt, not only survived."""
        count = 0
        for path in self.logs.glob("*.log"):
            for line in path.read_text(errors="replace").splitlines():
                if '"retriable failure, backing off"' in line and what in line:
                    count += 1
        return count

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of every service log, for an assertion message."""
        parts = []
        for path in sorted(self.logs.glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(parts)


def logged(path: Path, event_id: str, message: str) -> bool:
    """Whether the JSON log at ``path`` has a line ``message`` about ``event_id``."""
    for line in path.read_text(errors="replace").splitlines():
        if event_id not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line still being written
        if record.get("msg") == message and record.get("event_id") == event_id:
            return True
    return False


# --- the checks every case ends with ------------------------------------------------------------


async def merged_json(settings: Settings, event_id: str) -> dict[str, Any]:
    """``detection/{event_id}.json``, parsed strictly: NaN or Infinity in it fails the test."""
    data = await bootstrap.object_store(settings).get_bytes(
        settings.bucket_videos, f"detection/{event_id}.json"
    )

    def refuse(constant: str) -> Any:
        raise AssertionError(f"detection/{event_id}.json holds {constant}: not strict JSON")

    document: dict[str, Any] = json.loads(data, parse_constant=refuse)
    return document


async def group_lag(settings: Settings, group: str, topic: str) -> dict[int, int]:
    """End offset minus the group's committed offset, per partition of ``topic``."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    await consumer.start()
    try:
        partitions = await partitions_now(settings, topic)
        wanted = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not wanted:
            return {}
        ends = await consumer.end_offsets(wanted)
        committed = await admin.list_consumer_group_offsets(group, partitions=wanted)
        lags = {}
        for tp in wanted:
            meta = committed.get(tp)
            offset = meta.offset if meta is not None and meta.offset >= 0 else 0
            lags[tp.partition] = ends[tp] - offset
        return lags
    finally:
        await consumer.stop()
        await admin.close()


async def wait_no_lag(settings: Settings, timeout_s: float = 60.0) -> None:
    """Every consumer group has committed every record of its topic: no partition is stalled."""
    groups = {
        settings.topic_outbox_events: settings.group_runner,
        settings.topic_inference_tasks: settings.group_inference,
        settings.topic_inference_results: settings.group_results,
        settings.topic_predictable_events: settings.group_outbox,
    }
    deadline = time.monotonic() + timeout_s
    lags: dict[str, dict[int, int]] = {}
    while True:
        lags = {t: await group_lag(settings, g, t) for t, g in groups.items()}
        if all(lag == 0 for per_topic in lags.values() for lag in per_topic.values()):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"partitions still behind after {timeout_s} s: {lags}")
        await asyncio.sleep(1.0)


async def wait_all_ready(system: System, timeout_s: float = 90.0) -> None:
    """Readiness 200 on every service process."""
    deadline = time.monotonic() + timeout_s
    answers: dict[str, Any] = {}
    while True:
        answers = {
            name: await asyncio.to_thread(http_get, port, "/health/ready")
            for name, port in system.ports.items()
        }
        if all(code == 200 for code, _ in answers.values()):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"readiness not back to 200 in {timeout_s} s: {answers}")
        await asyncio.sleep(1.0)


async def dead_letters(settings: Settings, topic: str, count: int) -> list[dict[str, str]]:
    """Headers of the dead-letter copies of ``topic``, once at least ``count`` are there."""
    records = await read_topic(
        settings, settings.dlq_topic(topic), until=lambda r: len(r) >= count, timeout_s=60
    )
    return [{k: v.decode(errors="replace") for k, v in (r.headers or ())} for r in records]


async def assert_ready_with_frames(
    system: System, event_id: str, frame_count: int, view: dict[str, Any]
) -> None:
    """``ready``, and the merged JSON has exactly every 5th frame id, each once, in order."""
    assert view["status"] == "ready", (event_id, view.get("error"), system.log_tail())
    expected = list(range(0, frame_count, system.settings.frame_every_n))
    assert view["total_frames"] == len(expected), view
    document = await merged_json(system.settings, event_id)
    assert [f["frame_id"] for f in document["frames"]] == expected
    assert all(
        len(f["objects"]) <= system.settings.max_objects_per_frame for f in document["frames"]
    )


# --- a replicated cluster (STACK_KAFKA_BROKERS=3) ---------------------------------------------


def broker_name(node_id: int) -> str:
    """The stack's name of Kafka node ``node_id``: ``kafka`` for node 1, ``kafka-N`` after it."""
    return "kafka" if node_id == 1 else f"kafka-{node_id}"


async def describe_partitions(settings: Settings, topic: str | None = None) -> list[dict[str, Any]]:
    """Every partition of ``topic`` (or of every topic) with its topic, leader, replicas, isr.

    Asked again, by a new client, while a request fails: with a broker down the admin client may
    pick that node for the request.
    """
    for attempt in range(60):
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
        try:
            await admin.start()
            described = await admin.describe_topics()
            break
        except KafkaError:
            if attempt == 59:
                raise
        finally:
            await admin.close()
        await asyncio.sleep(0.5)
    return [
        {"topic": t["topic"], **p}
        for t in described
        if topic is None or t["topic"] == topic
        for p in t["partitions"]
    ]


async def busiest_leader(settings: Settings, topic: str) -> int:
    """The node that leads the most partitions of ``topic`` now."""
    leaders = Counter(p["leader"] for p in await describe_partitions(settings, topic))
    node, _ = leaders.most_common(1)[0]
    assert node >= 0, f"{topic} has a partition without a leader: {leaders}"
    return int(node)


async def wait_fully_replicated(settings: Settings, timeout_s: float = 120.0) -> float:
    """Wait until every partition of every topic has all its replicas in sync and a leader;
    returns how long that took (a rolling restart waits for it before the next broker)."""
    began = time.monotonic()
    lagging: list[dict[str, Any]] = []
    while time.monotonic() - began < timeout_s:
        try:
            partitions = await describe_partitions(settings)
        except KafkaError as error:  # a broker still starting: ask again
            lagging = [{"error": repr(error)}]
        else:
            lagging = [
                p for p in partitions if p["leader"] < 0 or set(p["isr"]) != set(p["replicas"])
            ]
            if partitions and not lagging:
                return time.monotonic() - began
        await asyncio.sleep(0.5)
    raise AssertionError(f"partitions not fully replicated after {timeout_s} s: {lagging[:5]}")


async def dead_letter_total(settings: Settings) -> int:
    """How many records every dead-letter topic of the system holds (0 where none exists)."""
    topics = [
        settings.dlq_topic(t)
        for t in (
            settings.topic_outbox_events,
            settings.topic_inference_tasks,
            settings.topic_inference_results,
        )
    ]
    wanted = [TopicPartition(t, p) for t in topics for p in await partitions_now(settings, t)]
    if not wanted:
        return 0
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(wanted)
    finally:
        await consumer.stop()
    return int(sum(ends.values()))


# --- many videos through one fault, and what it cost ----------------------------------------------


@dataclass(frozen=True)
class Measured:
    """One fault case's figures, for the summary `make test-faults` prints."""

    suite: str
    fault: str
    videos: int
    took_s: float
    #: ``took_s`` minus the same suite's fault-free run of as many videos.
    extra_s: float | None
    #: From the end of the fault (resumed, restarted, toxic removed) to the last video ready.
    recovered_s: float | None


MEASURED: list[Measured] = []
#: A fault case returns when its fault ended (``time.monotonic()``), or None if it never ends
#: by itself before the videos do (a latency toxic lifted only afterwards).
Fault = Callable[[list[str]], Awaitable[float | None]]


async def no_fault(event_ids: list[str]) -> float | None:
    return None


async def videos_survive(
    system: System,
    fault: Fault,
    *,
    video: Path,
    frames: int,
    count: int,
    timeout_s: float,
    submit_with: Settings | None = None,
) -> tuple[float, float | None]:
    """Submit ``count`` copies of ``video``, apply ``fault`` while they flow, and check the end:
    every one ``ready`` exactly once with exactly its sampled frames, none ``failed``, nothing on
    any dead-letter topic, every group caught up, readiness 200 everywhere. Returns how long the
    videos took from the first submission, and how long after the fault's end the last was ready.
    ``submit_with``: other settings for the submissions (the test's own client, not through a
    fault proxy in front of the services).
    """
    settings = system.settings
    ready_before = system.ready_count()
    dead_before = await dead_letter_total(settings)
    began = time.monotonic()
    event_ids = [await submit_video(submit_with or settings, video) for _ in range(count)]
    fault_ended = await fault(event_ids)
    views = await asyncio.gather(*(system.wait_finished(e, timeout_s) for e in event_ids))
    done = time.monotonic()
    assert [v["status"] for v in views] == ["ready"] * count, (views, system.log_tail())
    for event_id, view in zip(event_ids, views, strict=True):
        await assert_ready_with_frames(system, event_id, frames, view)
    await wait_no_lag(settings, timeout_s=120)
    await wait_all_ready(system, timeout_s=120)
    assert system.ready_count() - ready_before == count, system.log_tail()
    assert await dead_letter_total(settings) == dead_before, "a fault put messages on a DLQ"
    return done - began, None if fault_ended is None else max(0.0, done - fault_ended)


def record(
    suite: str, fault: str, videos: int, took: tuple[float, float | None], clean_s: float | None
) -> None:
    took_s, recovered_s = took
    extra = None if clean_s is None else took_s - clean_s
    MEASURED.append(Measured(suite, fault, videos, took_s, extra, recovered_s))


@contextlib.contextmanager
def running_system(
    settings: Settings, logs: Path, *, runners: int = 2, warm_up: tuple[Path, int] | None = None
) -> Iterator[System]:
    """The services as processes on ``settings``, ready, and stopped afterwards. ``warm_up``
    (a video and its frame count): one unmeasured run of it first, which pays for the
    detector's warm-up, so that the cases' timings compare."""
    logs.mkdir(parents=True, exist_ok=True)
    running = System(settings, logs)
    running.start(runners=runners)
    try:
        asyncio.run(wait_all_ready(running, timeout_s=120))
        if warm_up is not None:
            video, frames = warm_up
            asyncio.run(
                videos_survive(
                    running, no_fault, video=video, frames=frames, count=1, timeout_s=300
                )
            )
        yield running
    finally:
        running.stop()
