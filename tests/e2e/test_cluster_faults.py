"""Broker faults on a replicated cluster (three KRaft brokers, replication 3, min.insync.replicas
2): a broker lost mid-video is invisible to the videos.

Five copies of bikes.mp4 flow through two runner replicas, an inference worker and an outbox-S3
worker while a broker is SIGKILLed, SIGSTOPped for 30 s, or every broker is restarted one after
another. Every case ends as every fault case does (``support.faults.videos_survive``): each video
``ready`` exactly once with exactly its 50 frames, none ``failed``, no record on any dead-letter
topic, every group caught up, readiness 200; and the cluster fully replicated again. Each case's
extra latency over a fault-free run of five videos is reported (``make test-faults`` prints it).

Needs the fault stack (``make test-faults``: ``STACK_KAFKA_BROKERS=3``).
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from support.faults import (
    System,
    broker_name,
    busiest_leader,
    describe_partitions,
    kill_server,
    no_fault,
    pause_server,
    record,
    restored,
    resume_server,
    running_system,
    start_server,
    stop_server,
    videos_survive,
    wait_fully_replicated,
)
from support.stack import isolated_settings
from support.videos import real_video

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(600)]

VIDEO, FRAMES, VIDEOS = "bikes.mp4", 250, 5
SUITE = "cluster"
#: Five videos take about half a minute here; a fault adds its length and a failover.
FINISH_S = 300.0
BROKERS = ["kafka", "kafka-2", "kafka-3"]
#: The fault-free run's duration, the reference of every case's extra latency.
clean: dict[str, float] = {}


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    if os.environ.get("STACK_KAFKA_BROKERS") != "3":
        raise RuntimeError(
            "the cluster faults need the three-broker stack: run them with `make test-faults`"
        )
    base = tmp_path_factory.mktemp("cluster")
    settings = isolated_settings(base / "work", result_deadline_s=30.0, reaper_max_attempts=5)
    assert settings.kafka_topic_replication == 3, "the stack's env sets KAFKA_TOPIC_REPLICATION"
    assert settings.topic_configs == {"min.insync.replicas": "2"}
    with running_system(settings, base / "logs", warm_up=(real_video(VIDEO), FRAMES)) as running:
        yield running


async def _in_flight(system: System, event_id: str) -> None:
    """Until the video is probed and its frame tasks are being published."""
    view = await system.wait_status(
        event_id, lambda v: bool(v.get("video")) or v["status"] != "processing", 60, every_s=0.05
    )
    assert view["status"] == "processing", f"finished before the fault: {view}"


async def _survive(system: System, name: str, fault) -> None:
    took = await videos_survive(
        system, fault, video=real_video(VIDEO), frames=FRAMES, count=VIDEOS, timeout_s=FINISH_S
    )
    await wait_fully_replicated(system.settings)
    record(SUITE, name, VIDEOS, took, clean.get("s"))


async def test_the_topics_the_services_create_are_replicated_three_times_with_two_in_sync(system):
    """The services created their topics with replication 3 and ``min.insync.replicas=2`` (the
    stack's env), every partition led and its three replicas in sync; five videos flow through
    the cluster without a fault (the reference of the cases' extra latency)."""
    settings = system.settings
    partitions = await describe_partitions(settings, settings.topic_inference_tasks)
    assert len(partitions) == settings.kafka_topic_partitions
    assert all(len(p["replicas"]) == 3 and len(p["isr"]) == 3 for p in partitions), partitions
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        [response] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, settings.topic_inference_tasks)]
        )
    finally:
        await admin.close()
    configs = {entry[0]: entry[1] for entry in response.resources[0][4]}
    assert configs["min.insync.replicas"] == "2"

    took = await videos_survive(
        system, no_fault, video=real_video(VIDEO), frames=FRAMES, count=VIDEOS, timeout_s=FINISH_S
    )
    clean["s"] = took[0]
    record(SUITE, "none (reference)", VIDEOS, took, None)


async def test_the_leader_of_the_video_tasks_sigkilled_mid_video_is_invisible(system):
    """SIGKILL of the broker leading most partitions of the frame tasks once the first video is
    being cut into tasks, kept down for 20 s (the other two lead and ack meanwhile), then
    restarted: five videos ready once each, nothing dead-lettered, nothing failed."""
    settings = system.settings
    failover: list[float] = []

    async def kill_the_leader(event_ids: list[str]) -> float:
        await _in_flight(system, event_ids[0])
        node = await busiest_leader(settings, settings.topic_inference_tasks)
        name = broker_name(node)
        with restored(name):
            kill_server(name)
            killed = time.monotonic()
            # leadership moves to an in-sync replica once the controller fences the dead node
            while True:
                tasks = await describe_partitions(settings, settings.topic_inference_tasks)
                if all(p["leader"] not in {node, -1} for p in tasks):
                    break
                assert time.monotonic() - killed < 60, f"no failover in 60 s: {tasks}"
                await asyncio.sleep(0.2)
            failover.append(time.monotonic() - killed)
            await asyncio.sleep(max(0.0, 20 - (time.monotonic() - killed)))
            await asyncio.to_thread(start_server, name)
        return time.monotonic()

    await _survive(system, "leader SIGKILLed, restarted after 20 s", kill_the_leader)
    record(SUITE, "leader SIGKILLed: leaders moved", 0, (failover[0], failover[0]), None)


async def test_a_broker_sigstopped_for_30_seconds_mid_video_is_invisible(system):
    """SIGSTOP for 30 s of the broker leading most task partitions (sockets open, nothing
    answered: a hung machine), then SIGCONT: five videos ready once each, nothing lost."""
    settings = system.settings

    async def pause_the_leader(event_ids: list[str]) -> float:
        await _in_flight(system, event_ids[0])
        name = broker_name(await busiest_leader(settings, settings.topic_inference_tasks))
        with restored(name):
            pause_server(name)
            await asyncio.sleep(30)
            resume_server(name)
        return time.monotonic()

    await _survive(system, "broker SIGSTOPped 30 s", pause_the_leader)


async def test_every_broker_restarted_one_after_another_mid_video_is_invisible(system):
    """A rolling restart while five videos flow: each broker stopped (controlled shutdown),
    started again, and the cluster fully replicated before the next: nothing lost or doubled."""
    settings = system.settings
    catch_up: list[float] = []

    async def rolling_restart(event_ids: list[str]) -> float:
        await _in_flight(system, event_ids[0])
        for name in BROKERS:
            with restored(name):
                await asyncio.to_thread(stop_server, name)
                await asyncio.to_thread(start_server, name)
            catch_up.append(await wait_fully_replicated(settings))
        return time.monotonic()

    await _survive(system, "rolling restart of the 3 brokers", rolling_restart)
    assert len(catch_up) == len(BROKERS)
