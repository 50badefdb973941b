"""``video-runner result --format jsonl`` streams a three-hour result (54,000 frames, 20 objects
each: tens of MB in S3) with flat memory: its peak RSS is that of a 100-frame result, give or
take a bound far below the object's size."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from support.stack import REPO, settings_env, store_of
from video_runner import bootstrap
from video_runner.domain.results import FrameResult, MergedJson
from video_runner.domain.status import Status

#: What the child reports: its own peak RSS, in KiB (Linux ru_maxrss), after the command ran.
PEAK = """
import resource, sys
from video_runner.entrypoints.cli import main
code = main(sys.argv[1:])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""
#: Growth of the peak RSS allowed between 100 and 54,000 frames.
BOUND_MB = 20


def write_result(path: Path, event_id: str, frames: int) -> None:
    """A final JSON as the outbox-S3 worker writes it, streamed to ``path`` frame by frame."""
    objects = [
        {"class": f"c{k}", "box": [1.5 * k, 2.0, 3.0 + k, 40.25], "conf": 0.5, "track_id": k}
        for k in range(20)
    ]
    writer = MergedJson({"event_id": event_id, "status": "predictable"})
    with path.open("w", encoding="utf-8") as out:
        out.write(writer.head())
        for index in range(frames):
            out.write(writer.frame(FrameResult(index * 5, index * 200, objects, model="m@1")))
        out.write(writer.middle())
        out.write(writer.tail())


async def seed_ready(settings, store, event_id: str, path: Path) -> None:
    bucket, key = settings.bucket_videos, f"detection/{event_id}.json"
    objects = bootstrap.object_store(settings)
    await objects.ensure_bucket(bucket)
    await objects.upload_file(bucket, key, path, "application/json")
    await store.begin(event_id, {"source": {"bucket": bucket, "object": "input/x.mp4"}})
    await store.transition(event_id, Status.PREDICTABLE, {"predictable_at": datetime.now(UTC)})
    await store.transition(
        event_id,
        Status.READY,
        {"ready_at": datetime.now(UTC), "output_s3": f"s3://{bucket}/{key}"},
    )


def peak_rss_mb(settings, event_id: str) -> tuple[float, int]:
    """Peak RSS of ``result EVENT_ID --format jsonl`` and how many lines it wrote."""
    done = subprocess.run(
        [sys.executable, "-c", PEAK, "result", event_id, "--format", "jsonl"],
        env=settings_env(settings),
        cwd=REPO,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    peak_kib = int(done.stderr.decode().strip().splitlines()[-1])
    return peak_kib / 1024, done.stdout.count(b"\n")


@pytest.mark.timeout(600)
async def test_json_lines_of_54000_frames_stream_with_flat_memory(settings, tmp_path):
    """The peak RSS of streaming 54,000 frames stays within BOUND_MB of streaming 100, while
    the object itself is several times larger than the bound."""
    store = store_of(settings)
    try:
        small, large = tmp_path / "small.json", tmp_path / "large.json"
        write_result(small, "mem-small", 100)
        write_result(large, "mem-large", 54_000)
        await seed_ready(settings, store, "mem-small", small)
        await seed_ready(settings, store, "mem-large", large)
    finally:
        await store.close()
    size_mb = large.stat().st_size / 1024**2
    assert size_mb > 3 * BOUND_MB
    small_peak, small_lines = peak_rss_mb(settings, "mem-small")
    large_peak, large_lines = peak_rss_mb(settings, "mem-large")
    print(f"object {size_mb:.0f} MB; peak RSS {small_peak:.0f} MB -> {large_peak:.0f} MB")
    assert (small_lines, large_lines) == (100, 54_000)
    assert large_peak - small_peak < BOUND_MB
