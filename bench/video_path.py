"""bench/video_path.py: the runner's whole video path on the local stack, against ffmpeg.

One runner process (``video-runner serve``) on the local stack (Kafka, versitygw, FerretDB); the
720p H.264 benchmark video (5,016 frames, see bench/extract.py) is uploaded once, then events for
it are published one at a time. Each is timed from its event on ``outbox_events`` until the store
says every task is published and recorded (``total_frames`` set): download from S3, probe, decode
(only what sampling needs), preprocess, JPEG, 1,004 uploads to S3, 1,004 tasks to Kafka and the
task chunks to the store. The reference is ``ffmpeg -i V -f null -`` on the same file, run
alternately in the same process. Each run also prints the CPU seconds the runner and each
server spent on it, and the runner's own stage timings: on two cores, the servers' share is CPU
the extraction does not get. Run it with nothing else busy (``make bench-video-path``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(HERE.parent / "tests"), str(HERE)]

import extract  # noqa: E402
from stack_services import load, ports_of, say, services, until_ready  # noqa: E402
from support.stack import isolated_settings, publish  # noqa: E402
from video_runner import bootstrap  # noqa: E402
from video_runner.domain.status import Status  # noqa: E402

KEY = "input/bench.mp4"


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stack_pids() -> dict[str, int]:
    """The local stack's servers, from the pid files ``tools/stack/stack.sh`` writes."""
    pids = {}
    for name in ("kafka", "s3", "mongo"):
        path = REPO / ".stack" / "pids" / f"{name}.pid"
        if path.exists():
            pids[name] = int(path.read_text().split()[0])
    return pids


def runner_stages(log: Path, event_id: str) -> dict[str, float]:
    """The runner's own stage timings for one event, from its JSON log."""
    stages = {}
    for line in log.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event_id") == event_id and "stage" in record and "duration_s" in record:
            stages[record["stage"]] = float(record["duration_s"])
    return stages


def ffmpeg_seconds(video: Path) -> float:
    began = time.monotonic()
    subprocess.run([extract.FFMPEG, "-v", "error", "-i", str(video), "-f", "null", "-"], check=True)
    return time.monotonic() - began


async def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--video", default="720p", help="a case of bench/extract.py (720p)")
    parser.add_argument("--tiny", action="store_true", help="144p inputs: checks that it runs")
    args = parser.parse_args()
    video = extract.ensure_videos(args.tiny)[args.video]
    say("# bench/video_path.py: the runner's whole video path on the local stack")
    say(f"# {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    say(f"# {video.name}: {extract.frame_count(video)} frames; load average at start: {load()}")
    with tempfile.TemporaryDirectory(prefix="bench-video-path-") as folder:
        settings = isolated_settings(Path(folder) / "work")
        objects = bootstrap.object_store(settings)
        await objects.ensure_bucket(settings.bucket_videos)
        bucket = settings.bucket_videos
        await objects.upload_file(bucket, KEY, video, "video/mp4")
        store = bootstrap.prediction_store(settings)
        runs: list[tuple[float, float]] = []
        try:
            with services(settings, Path(folder), outbox=False) as started:
                await until_ready(ports_of(settings, 0, outbox=False))
                pids = {"runner": started[0].process.pid, **stack_pids()}
                for n in range(args.repeats + 1):
                    reference = ffmpeg_seconds(video)
                    event_id = f"video-path-{n}"
                    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
                    began = time.monotonic()
                    await publish(
                        settings,
                        settings.topic_outbox_events,
                        event_id,
                        {
                            "event_id": event_id,
                            "payload": {
                                "bucket": settings.bucket_videos,
                                "object": "input/bench.mp4",
                            },
                        },
                    )
                    while True:
                        prediction = await store.get(event_id)
                        if prediction is not None and prediction.extraction_done:
                            break
                        if prediction is not None and prediction.status is Status.FAILED:
                            raise RuntimeError(f"{event_id} failed: {prediction.error}")
                        await asyncio.sleep(0.02)
                    ours = time.monotonic() - began
                    label = "warm-up" if n == 0 else f"run {n}"
                    say(
                        f"{label:<8} video path {ours:6.2f} s   ffmpeg -f null "
                        f"{reference:6.2f} s   ratio {reference / ours:.2f}x   [load {load()}]"
                    )
                    cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
                    stages = runner_stages(started[0].log_path, event_id)
                    say(
                        "         CPU s: "
                        + ", ".join(f"{name} {spent:.2f}" for name, spent in cpu.items())
                        + f" (of {2 * ours:.1f} on 2 cores); runner stages s: "
                        + ", ".join(f"{stage} {spent:.2f}" for stage, spent in stages.items())
                    )
                    if n:
                        runs.append((ours, reference))
        finally:
            await store.close()
    best = min(ours for ours, _ in runs)
    reference = min(ref for _, ref in runs)
    say(
        f"best of {len(runs)}: video path {best:.2f} s, ffmpeg {reference:.2f} s: "
        f"the video path runs at {reference / best:.2f}x of ffmpeg -f null"
    )
    say(f"# load average at end: {load()}")


if __name__ == "__main__":
    asyncio.run(main())
