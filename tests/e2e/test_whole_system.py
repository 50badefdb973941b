"""The whole system as processes: submit -> runner -> inference -> runner -> outbox-S3 -> ready."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from support.stack import REPO, isolated_settings, service_process, settings_env
from support.videos import real_video
from video_runner import bootstrap


def cli(settings, *args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "video_runner.entrypoints.cli", *args],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        check=False,
    )


def detections(document):
    return {frame["frame_id"]: frame["objects"] for frame in document["frames"]}


@pytest.mark.timeout(600)
async def test_two_videos_submitted_at_once_end_ready_with_the_same_detections_as_process(tmp_path):
    """Both videos end ready with detection/{id}.json in S3, every 5th frame id, and the
    detections equal those `video-runner process` computes in one process for the same file;
    both name the same one model; `result --format csv|coco` export them with one row /
    annotation per object."""
    settings = isolated_settings(tmp_path / "work")
    videos = {"bikes.mp4": 250, "bigbuckbunny.mp4": 132}
    with (
        service_process("serve", settings, tmp_path / "runner.log"),
        service_process("inference", settings, tmp_path / "inference.log"),
        service_process("outbox-s3", settings, tmp_path / "outbox.log"),
    ):
        submissions = await asyncio.gather(
            *(
                asyncio.to_thread(
                    cli, settings, "submit", str(real_video(name)), "--wait", "--timeout", "400"
                )
                for name in videos
            )
        )
    for (name, frame_count), done in zip(videos.items(), submissions, strict=True):
        assert done.returncode == 0, done.stderr + (tmp_path / "runner.log").read_text()[-3000:]
        event_id, text = done.stdout.split("\n", 1)
        document = json.loads(text)
        assert document["event_id"] == event_id
        assert [f["frame_id"] for f in document["frames"]] == list(range(0, frame_count, 5))
        assert [p["frame"] for p in document["prediction"]] == list(range(0, frame_count, 5))
        status = json.loads(cli(settings, "status", event_id).stdout)
        assert status["status"] == "ready"
        assert status["output_s3"] == f"s3://{settings.bucket_videos}/detection/{event_id}.json"
        stored = await bootstrap.object_store(settings).get_bytes(
            settings.bucket_videos, f"detection/{event_id}.json"
        )
        assert json.loads(stored) == document
        local = cli(settings, "process", str(real_video(name)))
        assert local.returncode == 0, local.stderr
        in_one_process = json.loads(local.stdout)
        assert detections(in_one_process) == detections(document)
        assert len(document["models"]) == 1
        assert document["models"] == in_one_process["models"]
        objects = sum(len(f["objects"]) for f in document["frames"])
        rows = cli(settings, "result", event_id, "--format", "csv").stdout.splitlines()
        assert len(rows) == 1 + objects
        coco = json.loads(cli(settings, "result", event_id, "--format", "coco").stdout)
        assert len(coco["images"]) == len(document["frames"])
        assert len(coco["annotations"]) == objects
