"""Tracks, re-runs and JSON Lines on the real stack: a tracked video through the runner, an
inference worker and the outbox-S3 worker; the same frames run again with the HOG detector for a
second version (no second download, no second decode); ``result --format jsonl`` over S3."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import pytest

from support.documents import stored_document
from support.options import submit_with_options
from support.stack import REPO, publish, running, settings_env, store_of, wait_for
from support.videos import make_video
from video_runner import bootstrap
from video_runner.domain.detections import Detection
from video_runner.domain.exports import export

EVENT = "trk-1"
VERSION = "trk-1--v2"


class SteadyDetector:
    """The inference worker's own detector here: one person in the same place on every frame."""

    @property
    def name(self) -> str:
        return "steady"

    def detect(self, images: Sequence[Any]) -> list[list[Detection]]:
        return [[Detection("person", (4.0, 4.0, 40.0, 40.0), 0.9)] for _ in images]


@pytest.fixture
async def store(settings):
    store = store_of(settings)
    yield store
    await store.close()


async def _ended(store, event_id: str) -> dict:
    async def ended():
        document = await stored_document(store, event_id)
        return document if document and document["status"] in {"ready", "failed"} else None

    return await wait_for(ended, timeout_s=120)


async def _final(settings, event_id: str) -> bytes:
    return await bootstrap.object_store(settings).get_bytes(
        settings.bucket_videos, f"detection/{event_id}.json"
    )


def _counter(process, name: str, **labels: str) -> float:
    return process.telemetry.registry.get_sample_value(name, labels) or 0.0


async def _rerun(settings, request_id: str, detector: str) -> None:
    message = {"type": "reinfer", "event_id": EVENT, "request_id": request_id, "detector": detector}
    await publish(settings, settings.topic_outbox_events, EVENT, message)


@pytest.mark.timeout(300)
async def test_a_tracked_video_and_its_rerun_with_hog_on_the_real_stack(settings, store, tmp_path):
    """Version 1 has one stable track over its frames; ``reinfer --detector hog`` (sent twice)
    gives one version 2 beside it, written by the real HOG detector from the stored frames, with
    the runner's download and decode counters unchanged; JSON Lines streams both."""
    video = make_video(tmp_path / "v.mp4", frames=23, width=96, height=80)
    runner, outbox = bootstrap.Runner(settings), bootstrap.Outbox(settings)
    inference = bootstrap.Inference(settings, detector_override=SteadyDetector())
    async with running(runner), running(inference), running(outbox):
        await submit_with_options(settings, video, EVENT, {"track": True})
        first = await _ended(store, EVENT)
        assert first["status"] == "ready", first.get("error")
        downloads = _counter(runner, "video_runner_stage_seconds_count", stage="download")
        decoded = _counter(runner, "video_runner_frames_extracted_total")
        assert (downloads, decoded) == (1.0, 5.0)
        original = await _final(settings, EVENT)
        await _rerun(settings, "req-1", "hog")
        await _rerun(settings, "req-1", "hog")
        second = await _ended(store, VERSION)
        assert second["status"] == "ready", second.get("error")
        # Both copies handled (the second one, if it came while the first was publishing,
        # published the same tasks again: harmless, the first result of a frame wins).
        await wait_for(lambda: _async(_handled(runner) >= 2), timeout_s=30)
        assert _counter(runner, "video_runner_stage_seconds_count", stage="download") == downloads
        assert _counter(runner, "video_runner_frames_extracted_total") == decoded
    tracked = json.loads(original)
    assert [o["track_id"] for f in tracked["frames"] for o in f["objects"]] == [1] * 5
    assert [t["frames"] for t in tracked["tracks"]] == [5]
    assert tracked["models"] == ["steady"]
    assert await _final(settings, EVENT) == original  # version 1 stays as it was
    rerun = json.loads(await _final(settings, VERSION))
    assert (rerun["version"], rerun["version_of"], rerun["detector"]) == (2, EVENT, "hog")
    assert len(rerun["models"]) == 1
    assert rerun["models"][0].startswith("hog-people@")
    assert [f["frame_id"] for f in rerun["frames"]] == [f["frame_id"] for f in tracked["frames"]]
    assert second["models"] == rerun["models"]
    assert await store.get("trk-1--v3") is None
    for event_id, data in ((EVENT, original), (VERSION, await _final(settings, VERSION))):
        lines = _cli(settings, "result", event_id, "--format", "jsonl")
        assert lines == export(data, "jsonl")
    assert _cli(settings, "result", EVENT, "--version", "2", "--format", "jsonl") == export(
        await _final(settings, VERSION), "jsonl"
    )


async def _async(value: bool) -> bool:
    return value


def _handled(runner) -> float:
    return sum(
        _counter(runner, "video_runner_reinfer_requests_total", outcome=outcome)
        for outcome in ("started", "duplicate")
    )


def _cli(settings, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "video_runner.entrypoints.cli", *args],
        env=settings_env(settings),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout
