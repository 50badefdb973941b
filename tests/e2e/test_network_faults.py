"""Network faults between the services and their servers, through a real fault proxy.

Every connection of the services (two runner replicas, an inference worker, an outbox-S3
worker) to Kafka, S3 and MongoDB goes through Toxiproxy (``STACK_TOXIPROXY=1``: one proxy per
server; each broker advertises its proxy's address, so partition leaders are reached through it
too). The test's own client submits directly. The cases add latency, cap the bandwidth of the
uploads, reset connections in the middle of a PUT and of a fetch, blackhole S3 for 60 s and cut
MongoDB and Kafka; each ends as every fault case does (``support.faults.videos_survive``):
every video ``ready`` exactly once with exactly its frames, nothing dead-lettered, every group
caught up, readiness 200 again without a restart. While a dependency is unreachable, readiness
names it, and only it.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import pytest
from pydantic import SecretStr

from support.faults import (
    System,
    http_get,
    no_fault,
    record,
    running_system,
    videos_survive,
)
from support.stack import isolated_settings
from support.toxiproxy import Toxiproxy
from support.videos import real_video

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(420)]

VIDEO, FRAMES, VIDEOS = "bikes.mp4", 250, 2
SUITE = "network"
FINISH_S = 300.0
KAFKA = ["kafka", "kafka-2", "kafka-3"]
EVERY = ["s3", "mongo", *KAFKA]
clean: dict[str, float] = {}


@pytest.fixture(scope="module")
def proxy() -> Toxiproxy:
    toxiproxy = Toxiproxy()
    toxiproxy.reset()
    assert set(toxiproxy.proxies()) == set(EVERY)
    return toxiproxy


@pytest.fixture(scope="module")
def system(tmp_path_factory, proxy):
    base = tmp_path_factory.mktemp("network")
    settings = isolated_settings(
        base / "work",
        kafka_bootstrap_servers=os.environ["TOXIPROXY_KAFKA_BOOTSTRAP_SERVERS"],
        s3_endpoint_url=os.environ["TOXIPROXY_S3_ENDPOINT_URL"],
        mongo_uri=os.environ["TOXIPROXY_MONGO_URI"],
        result_deadline_s=30.0,
        reaper_max_attempts=5,
        # a request into the blackhole gives up after 10 s and is retried (30 s by default)
        s3_read_timeout_s=10.0,
    )
    try:
        with running_system(
            settings, base / "logs", warm_up=(real_video(VIDEO), FRAMES)
        ) as running:
            yield running
    finally:
        proxy.reset()


@pytest.fixture
def direct(system: System):
    """The same topics, buckets and database, reached without the proxy: the test's client."""
    return system.settings.model_copy(
        update={
            "kafka_bootstrap_servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"],
            "s3_endpoint_url": os.environ["S3_ENDPOINT_URL"],
            "mongo_uri": SecretStr(os.environ["MONGO_URI"]),
        }
    )


@pytest.fixture(autouse=True)
def healed(proxy):
    """Whatever a case does to the proxies, none is cut or toxic afterwards."""
    yield
    proxy.reset()


async def _survive(system, direct, name: str, fault) -> tuple[float, float | None]:
    took = await videos_survive(
        system,
        fault,
        video=real_video(VIDEO),
        frames=FRAMES,
        count=VIDEOS,
        timeout_s=FINISH_S,
        submit_with=direct,
    )
    record(SUITE, name, VIDEOS, took, clean.get("s"))
    return took


async def _in_flight(system: System, event_id: str) -> None:
    view = await system.wait_status(
        event_id, lambda v: bool(v.get("video")) or v["status"] != "processing", 120, every_s=0.05
    )
    assert view["status"] == "processing", f"finished before the fault: {view}"


async def _readiness(system: System) -> tuple[int, dict[str, Any]]:
    code, body = await asyncio.to_thread(http_get, system.runners[0].port, "/health/ready")
    return code, body if isinstance(body, dict) else {"body": body}


def _down(body: dict[str, Any]) -> set[str]:
    """The dependencies a readiness answer reports down (consumers aside)."""
    checks = body.get("checks", {})
    return {n for n, c in checks.items() if ":" not in n and c["status"] == "down"}


async def _readiness_for(system: System, seconds: float) -> list[tuple[float, set[str]]]:
    """A runner's readiness every second for ``seconds``: (when, the dependencies it said down)."""
    seen = []
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        code, body = await _readiness(system)
        seen.append((time.monotonic() - began, _down(body) if code == 503 else set()))
        await asyncio.sleep(1)
    return seen


def _named_alone(seen: list[tuple[float, set[str]]], check: str) -> float:
    """Readiness named ``check`` alone down at some point, and never another; returns when first."""
    named = [t for t, down in seen if down == {check}]
    assert named, f"readiness never said {check} (alone) was down: {seen}"
    assert all(down <= {check} for _, down in seen), f"readiness blamed another: {seen}"
    return named[0]


async def test_through_the_proxy_without_a_fault_every_video_is_ready(system, direct):
    """The reference: two videos through the proxies, no toxic."""
    took = await _survive(system, direct, "none (reference)", no_fault)
    clean["s"] = took[0]


async def test_300_ms_of_latency_on_every_connection_slows_the_videos_and_loses_nothing(
    system, direct, proxy
):
    """300 ms added to everything the servers send back (Kafka, S3, MongoDB), for the whole
    flow: slower, nothing lost or doubled."""
    with proxy.toxic(EVERY, "latency", "downstream", latency=300):
        await _survive(system, direct, "300 ms latency on every connection", no_fault)


async def test_uploads_capped_at_200_kb_per_second_lose_nothing(system, direct, proxy):
    """Everything sent to S3 (the frame uploads, the merged JSON) capped at 200 KB/s."""
    with proxy.toxic(["s3"], "bandwidth", "upstream", rate=200):
        await _survive(system, direct, "S3 uploads capped at 200 KB/s", no_fault)


async def test_connections_reset_mid_put_lose_nothing(system, direct, proxy):
    """Once the videos are being cut into frames, every S3 connection is closed after 50 KB
    sent, for 10 s: frame PUTs are cut in their body; they are retried, nothing is lost."""

    retried = system.retried("put s3")

    async def cut_puts(event_ids: list[str]) -> float:
        await _in_flight(system, event_ids[0])
        with proxy.toxic(["s3"], "limit_data", "upstream", bytes=50_000):
            await asyncio.sleep(10)
        return time.monotonic()

    await _survive(system, direct, "S3 connections cut mid-PUT for 10 s", cut_puts)
    assert system.retried("put s3") > retried, "no PUT was cut: the fault missed the uploads"


async def test_connections_reset_mid_fetch_lose_nothing(system, direct, proxy):
    """From submission on, for 10 s: every S3 connection is closed after 100 KB received (the
    first read of the 500 KB video is cut mid-body: the ranged GET that looks for its index,
    or the download) and every Kafka connection is reset 2 s after it opens (fetches and
    produces cut): the read of the video and the fetches are retried."""

    source_reads = f"s3://{system.settings.bucket_videos}/input/"
    retried = system.retried(source_reads)

    async def cut_fetches(event_ids: list[str]) -> float:
        with (
            proxy.toxic(["s3"], "limit_data", "downstream", bytes=100_000),
            proxy.toxic(KAFKA, "reset_peer", "downstream", timeout=2000),
        ):
            await asyncio.sleep(10)
        return time.monotonic()

    await _survive(system, direct, "S3 cut mid-GET, Kafka reset, 10 s", cut_fetches)
    assert system.retried(source_reads) > retried, "no read of a video was cut: the fault missed"


async def test_s3_blackholed_for_60_seconds_mid_video_is_waited_out_and_named_by_readiness(
    system, direct, proxy
):
    """Nothing to or from S3 gets through for 60 s (connections stay open, data is dropped:
    the timeout toxic): readiness says s3 is down, and only s3, while it is; the videos wait
    and end ready once the blackhole ends, with no restart."""
    seen: list[tuple[float, set[str]]] = []

    async def blackhole(event_ids: list[str]) -> float:
        await _in_flight(system, event_ids[0])
        with (
            proxy.toxic(["s3"], "timeout", "downstream", timeout=0),
            proxy.toxic(["s3"], "timeout", "upstream", timeout=0),
        ):
            seen.extend(await _readiness_for(system, 60))
        return time.monotonic()

    await _survive(system, direct, "S3 blackholed 60 s", blackhole)
    named = _named_alone(seen, "s3")
    record(SUITE, "S3 blackholed: readiness said s3 down after", 0, (named, None), None)


@pytest.mark.parametrize(
    "link", [("mongo", ["mongo"], "mongodb"), ("kafka", KAFKA, "kafka")], ids=["mongo", "kafka"]
)
async def test_a_cut_link_is_named_by_readiness_and_healed_without_a_restart(
    system, direct, proxy, link
):
    """The link to one server cut for 20 s (its proxies refuse connections and drop the open
    ones) mid-video: readiness names that dependency alone while it is cut, and 200 again
    after, and the videos end ready once."""
    server, proxies, check = link
    seen: list[tuple[float, set[str]]] = []

    async def cut(event_ids: list[str]) -> float:
        await _in_flight(system, event_ids[0])
        with proxy.cut(proxies):
            seen.extend(await _readiness_for(system, 20))
        return time.monotonic()

    await _survive(system, direct, f"{server} link cut 20 s", cut)
    named = _named_alone(seen, check)
    record(SUITE, f"{server} cut: readiness said {check} down after", 0, (named, None), None)
