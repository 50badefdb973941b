"""The compose system's end-to-end checks, run from the host by tools/containers/test.sh.

1. A real video, submitted with `video-runner submit --wait`, ends `ready`.
2. A longer video (200 s: cut into segments that both runners extract) is submitted; a
   runner container extracting it is SIGKILLed mid-video;
   the video still ends `ready` with exactly one result: one final JSON holding each sampled
   frame once, and one completion notice (one notice_id, `ready`) on `prediction_events`.

Reads the host-side settings from the environment (.stack/compose/host.env).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from video_runner.contracts.notice import parse_notice

ROOT = Path(__file__).resolve().parents[2]
VIDEO_RUNNER = str(ROOT / ".venv" / "bin" / "video-runner")
PODMAN = os.environ.get("PODMAN", "podman")
#: The runner replicas: container name and the host port of their HTTP surface.
RUNNERS = {
    "video-runner_runner-1_1": int(os.environ.get("RUNNER_HOST_PORT", "18002")),
    "video-runner_runner-2_1": int(os.environ.get("RUNNER_2_HOST_PORT", "18012")),
}


def say(message: str) -> None:
    print(f"[check] {message}", flush=True)


def cli(*args: str, timeout: float = 60) -> str:
    done = subprocess.run(
        [VIDEO_RUNNER, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode:
        sys.exit(f"video-runner {' '.join(args)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def status(event_id: str) -> dict[str, object]:
    answer: dict[str, object] = json.loads(cli("status", event_id))
    return answer


def gauge(port: int, name: str) -> float:
    """A runner's gauge ``video_runner_{name}`` from its /metrics, 0 if it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
            text = answer.read().decode()
    except OSError:
        return 0.0
    for line in text.splitlines():
        if line.startswith(f"video_runner_{name} "):
            return float(line.split()[1])
    return 0.0


def view_from(port: int, event_id: str) -> dict[str, object] | None:
    """The event's status view as a runner serves it, or None if that runner does not answer."""
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/predictions/{event_id}", timeout=2
        ) as answer:
            view: dict[str, object] = json.loads(answer.read())
    except (OSError, ValueError):
        return None
    return view


def extracting(event_id: str, timeout: float) -> tuple[str, str]:
    """A runner container extracting event_id, caught mid-video, and what it had done then.

    A video cut into segments is extracted by every runner, a segment each: the victim is one
    with a segment in progress while some are still to do. A video extracted whole (one
    segment) has one extractor, caught while its frames are still being published.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, port in RUNNERS.items():
            view = view_from(port, event_id)
            if not view or view["status"] != "processing":
                continue
            segments = view.get("segments")
            if isinstance(segments, dict):
                done, count = segments.get("done"), segments.get("count")
                if (
                    isinstance(done, int)
                    and isinstance(count, int)
                    and done < count
                    and gauge(port, "segments_in_progress") > 0
                ):
                    return name, f"{done} of {count} segments done"
                continue
            published, expected = view.get("frames_published"), view.get("expected_frames")
            if (
                isinstance(published, int)
                and isinstance(expected, int)
                and 0 < published < expected
                and gauge(port, "videos_in_progress") > 0
            ):
                return name, f"{published} of {expected} frames published"
        time.sleep(0.05)
    sys.exit(f"no runner was seen extracting {event_id}: {status(event_id)}")


def wait_for(event_id: str, timeout: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = status(event_id)
        if view["status"] in {"ready", "failed"}:
            return view
        time.sleep(1)
    sys.exit(f"{event_id} did not end within {timeout} s: {status(event_id)}")


async def notices_of(event_id: str) -> list[tuple[str, str]]:
    """Every notice on prediction_events for event_id: (notice_id, status)."""
    consumer = AIOKafkaConsumer(
        "prediction_events",
        bootstrap_servers=os.environ["KAFKA_BOOTSTRAP_SERVERS"],
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        partitions = consumer.assignment()
        while not partitions:
            await asyncio.sleep(0.2)
            partitions = consumer.assignment()
        ends = await consumer.end_offsets(list(partitions))
        found = []
        while [p for p in partitions if await consumer.position(p) < ends[p]]:
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for record in records:
                    notice = parse_notice(record.value or b"")
                    if notice.event_id == event_id:
                        found.append((notice.notice_id, notice.status))
        return found
    finally:
        await consumer.stop()


def exactly_one_result(event_id: str, view: dict[str, object]) -> None:
    if view["status"] != "ready":
        sys.exit(f"{event_id} ended {view['status']}: {view}")
    merged = json.loads(cli("result", event_id))
    frames = Counter(frame["frame_id"] for frame in merged["frames"])
    repeated = [frame for frame, count in frames.items() if count > 1]
    if repeated or len(frames) != view["total_frames"]:
        sys.exit(
            f"{event_id}: {len(frames)} distinct frames for {view['total_frames']}, "
            f"repeated: {repeated[:5]}"
        )
    notices = asyncio.run(notices_of(event_id))
    distinct = set(notices)
    if len(distinct) != 1 or next(iter(distinct))[1] != "ready":
        sys.exit(f"{event_id}: completion notices {notices}, expected one ready")
    say(f"{event_id}: ready, {len(frames)} frames once each, one notice ({len(notices)} copies)")


def long_video(folder: Path, source: Path) -> Path:
    """`source` looped into a video about twenty times as long, streams copied (no encoding)."""
    import imageio_ffmpeg

    out = folder / "long.mp4"
    if not out.exists():
        subprocess.run(
            [
                imageio_ffmpeg.get_ffmpeg_exe(),
                "-loglevel",
                "error",
                "-y",
                "-stream_loop",
                "19",
                "-i",
                str(source),
                "-c",
                "copy",
                "-an",
                str(out),
            ],
            check=True,
            timeout=120,
        )
    return out


def main() -> int:
    video = Path(sys.argv[1])
    work = Path(sys.argv[2])
    work.mkdir(parents=True, exist_ok=True)

    say(f"submit {video.name} --wait")
    t0 = time.monotonic()
    answer = cli("submit", str(video), "--wait", "--timeout", "300", timeout=320)
    event_id = answer.splitlines()[0].strip()
    view = status(event_id)
    if view["status"] != "ready":
        sys.exit(f"submit --wait: {event_id} is {view['status']}")
    say(f"{event_id}: ready in {time.monotonic() - t0:.1f} s")
    exactly_one_result(event_id, view)

    long = long_video(work, video)
    event_id = cli("submit", str(long)).splitlines()[0].strip()
    say(f"submitted {long.name} as {event_id}; waiting for a runner to extract it")
    victim, before = extracting(event_id, timeout=120)
    subprocess.run([PODMAN, "kill", "--signal", "KILL", victim], check=True, capture_output=True)
    say(f"SIGKILLed {victim} mid-extraction ({before})")
    view = wait_for(event_id, timeout=600)
    exactly_one_result(event_id, view)
    return 0


if __name__ == "__main__":
    sys.exit(main())
