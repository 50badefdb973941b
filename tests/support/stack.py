"""Test helpers that talk to the local stack: settings per test, Kafka probes, service processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from video_runner import bootstrap
from video_runner.settings import Settings, load_settings

STACK_VARIABLES = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "S3_ENDPOINT_URL",
    "S3_ACCESS_KEY_ID",
    "S3_SECRET_ACCESS_KEY",
    "MONGO_URI",
)
REPO = Path(__file__).resolve().parents[2]


def require_stack() -> None:
    missing = [name for name in STACK_VARIABLES if not os.environ.get(name)]
    if missing:
        message = f"the local stack's variables are missing ({', '.join(missing)}): "
        raise RuntimeError(message + "run `make stack-up` and `source .stack/env` first")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def isolated_settings(work_dir: Path, **overrides: Any) -> Settings:
    """Settings whose topics, groups, buckets and database belong to this test alone."""
    require_stack()
    uid = uuid.uuid4().hex[:10]
    values: dict[str, Any] = {
        "topic_outbox_events": f"outbox_events-{uid}",
        "topic_inference_tasks": f"inference_tasks-{uid}",
        "topic_inference_results": f"inference_results-{uid}",
        "topic_predictable_events": f"predictable_events-{uid}",
        "topic_prediction_events": f"prediction_events-{uid}",
        "topic_video_segments": f"video_segments-{uid}",
        "group_runner": f"runner-group-{uid}",
        "group_results": f"runner-results-group-{uid}",
        "group_inference": f"inference-group-{uid}",
        "group_outbox": f"outbox-s3-group-{uid}",
        "group_segments": f"runner-segments-group-{uid}",
        "bucket_videos": f"videos-{uid}",
        "bucket_frames": f"frames-{uid}",
        "mongo_db": f"runner_db_{uid}",
        "work_dir": str(work_dir),
        "http_port": free_port(),
        "inference_http_port": free_port(),
        "outbox_http_port": free_port(),
        "kafka_session_timeout_ms": 10_000,
        "reaper_interval_s": 1.0,
        "outbox_sweep_interval_s": 1.0,
        "outbox_notice_grace_s": 3.0,
        "retry_max_s": 2.0,
    }
    values.update(overrides)
    return load_settings(**values)


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment a service process needs to run with ``settings``."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        plain = value.get_secret_value() if hasattr(value, "get_secret_value") else value
        env[name.upper()] = str(plain)
    env["LOG_FORMAT"] = "json"
    return env


async def create_topic(settings: Settings, topic: str, partitions: int) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


async def publish(
    settings: Settings, topic: str, key: str | None, value: bytes | Mapping[str, Any]
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        data = value if isinstance(value, bytes) else json.dumps(value).encode()
        await producer.send_and_wait(topic, data, key=None if key is None else key.encode())
    finally:
        await producer.stop()


async def publish_video_event(
    settings: Settings, event_id: str, key: str, options: Mapping[str, Any] | None = None
) -> None:
    """An ``outbox_events`` message for the video at ``key`` in the videos bucket."""
    payload: dict[str, Any] = {"bucket": settings.bucket_videos, "object": key}
    if options is not None:
        payload["options"] = dict(options)
    await publish(
        settings, settings.topic_outbox_events, event_id, {"event_id": event_id, "payload": payload}
    )


async def partitions_now(settings: Settings, topic: str) -> set[int]:
    """The partitions of ``topic`` in the cluster's metadata now, none while it does not exist.

    Every topic is described, not ``topic`` alone: naming a missing topic in a metadata request
    would have a broker that auto-creates topics create it, with its default partitions.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics()
    finally:
        await admin.close()
    return {p["partition"] for t in described if t["topic"] == topic for p in t["partitions"]}


async def read_topic(
    settings: Settings,
    topic: str,
    *,
    until: Callable[[list[Any]], bool],
    timeout_s: float = 60.0,
) -> list[Any]:
    """Every record of ``topic`` from the beginning (no group), until ``until(records)``."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = time.monotonic() + timeout_s
        assigned: set[TopicPartition] = set()
        while time.monotonic() < deadline:
            if not assigned:
                wanted = {TopicPartition(topic, p) for p in await partitions_now(settings, topic)}
                if wanted:
                    consumer.assign(sorted(wanted))
                    await consumer.seek_to_beginning(*wanted)
                    assigned = wanted
            if assigned:
                batches = await consumer.getmany(timeout_ms=500)
                for batch in batches.values():
                    records.extend(batch)
                if until(records):
                    return records
            else:
                await asyncio.sleep(0.2)
        return records
    finally:
        await consumer.stop()


@contextlib.asynccontextmanager
async def running(process: Any) -> AsyncIterator[asyncio.Event]:
    """Run a ``bootstrap`` process object (Runner, Inference, Outbox) in this event loop."""
    stop = asyncio.Event()
    task = asyncio.create_task(process.run(stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


async def wait_for(
    check: Callable[[], Any], *, timeout_s: float = 60.0, every_s: float = 0.3
) -> Any:
    """Poll an async ``check`` until it returns something truthy."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s (last: {value!r})")
        await asyncio.sleep(every_s)


class ServiceProcess:
    """A ``video-runner`` subcommand as a real process, with its log in a file."""

    def __init__(self, command: str, settings: Settings, log_path: Path, **env: str) -> None:
        self.log_path = log_path
        environment = settings_env(settings) | env
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "video_runner.entrypoints.cli", command],
            env=environment,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self._log.close()

    def terminate(self, timeout_s: float = 30.0) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout_s)

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.terminate(timeout_s=20)
        if self.process.poll() is None:
            self.kill()
        self._log.close()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def service_process(
    command: str, settings: Settings, log_path: Path, **env: str
) -> Iterator[ServiceProcess]:
    service = ServiceProcess(command, settings, log_path, **env)
    try:
        yield service
    finally:
        service.stop()


def store_of(settings: Settings) -> Any:
    return bootstrap.prediction_store(settings)


async def submit_video(settings: Settings, video: Path) -> str:
    """Upload ``video`` and publish its event, as ``video-runner submit`` does; returns the id."""
    from video_runner.services import client_actions as client

    publisher = bootstrap.publisher(settings, "test")
    await publisher.start()
    try:
        return await client.submit(
            bootstrap.object_store(settings),
            publisher,
            bucket=settings.bucket_videos,
            topic=settings.topic_outbox_events,
            video=video,
        )
    finally:
        await publisher.stop()
