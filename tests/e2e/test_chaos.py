"""Nothing lost, nothing duplicated, while runner replicas are killed at random (`make soak`).

Like Kafka's own bounce tests and Confluent's chaos monkey: the system keeps being hit, and
afterwards every accepted event must have ended exactly once, complete and correctly merged.
Bounded in time and count; only local processes and servers are touched.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time

import pytest

from support.documents import stored_document
from support.stack import (
    ServiceProcess,
    create_topic,
    free_port,
    isolated_settings,
    store_of,
    submit_video,
    wait_for,
)
from support.videos import real_video
from video_runner import bootstrap

VIDEOS = {"carphone_pristine.mp4": 120, "bikes.mp4": 250}


@pytest.mark.soak
@pytest.mark.timeout(1200)
async def test_every_video_ends_ready_once_and_complete_while_runners_are_killed(tmp_path):
    """Eight videos, two runner replicas SIGKILLed and replaced at random for a minute: all
    eight end ready, each final JSON has exactly the expected frame ids, in order."""
    # CHAOS_SEED replays the kill schedule of an earlier run (the timings still vary).
    seed = int(os.environ.get("CHAOS_SEED") or time.time())
    chaos = random.Random(seed)
    print(f"chaos seed {seed} (CHAOS_SEED={seed} replays its kill schedule)")
    settings = isolated_settings(
        tmp_path / "work", result_deadline_s=15.0, reaper_interval_s=2.0, reaper_max_attempts=5
    )
    await create_topic(settings, settings.topic_outbox_events, partitions=4)
    logs = tmp_path / "logs"
    logs.mkdir()
    started = 0

    def runner() -> ServiceProcess:
        nonlocal started
        started += 1
        return ServiceProcess(
            "serve", settings, logs / f"runner-{started}.log", HTTP_PORT=str(free_port())
        )

    helpers = [
        ServiceProcess("inference", settings, logs / "inference.log"),
        ServiceProcess(
            "outbox-s3", settings, logs / "outbox-1.log", OUTBOX_HTTP_PORT=str(free_port())
        ),
        ServiceProcess(
            "outbox-s3", settings, logs / "outbox-2.log", OUTBOX_HTTP_PORT=str(free_port())
        ),
    ]
    runners = [runner(), runner()]
    names = [name for name in VIDEOS for _ in range(4)]
    try:
        events = {await submit_video(settings, real_video(name)): name for name in names}
        deadline = time.monotonic() + 60
        kills = 0
        while time.monotonic() < deadline:
            await asyncio.sleep(chaos.uniform(2.0, 8.0))
            victim = runners.pop(chaos.randrange(len(runners)))
            victim.kill()
            kills += 1
            runners.append(runner())
        store = store_of(settings)
        try:

            async def all_done():
                documents = [await stored_document(store, e) for e in events]
                finished = [d for d in documents if d and d["status"] in {"ready", "failed"}]
                return documents if len(finished) == len(events) else None

            documents = await wait_for(all_done, timeout_s=600, every_s=2.0)
        finally:
            await store.close()
    finally:
        for process in runners + helpers:
            process.stop()
    print(f"{kills} runner kills, {started} runner processes")
    assert kills >= 5
    objects = bootstrap.object_store(settings)
    for document in documents:
        event_id = document["_id"]
        assert document["status"] == "ready", (event_id, document.get("error"))
        frame_count = VIDEOS[events[event_id]]
        expected = list(range(0, frame_count, 5))
        merged = json.loads(
            await objects.get_bytes(settings.bucket_videos, f"detection/{event_id}.json")
        )
        assert [f["frame_id"] for f in merged["frames"]] == expected
        assert document["results_received"] == len(expected)
