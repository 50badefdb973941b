"""bench/results_path.py: the results path against the local stack (Kafka, S3, FerretDB).

Run it with nothing else busy on the machine (``make bench-results``; the stack must be up):

(a) results/s of the runner for one 1,000-frame event, with 1k, 10k and 100k result documents
    of other events already in the store (prefilled through the project's own store adapter);
(b) seconds from the last result acknowledged by Kafka to ``predictable`` and to ``ready``;
(c) ``video-runner submit --wait`` against ``video-runner process`` on bikes.mp4 and on a 720p
    H.264 video of 5,016 frames, with one inference worker and with two (alternating runs), and
    the share of one video's tasks each of two workers handled;
(d) a 54,000-frame event (a three-hour video's result set): last result to ``ready``, and the
    peak memory of the runner and the outbox-S3 worker against the 1,000- and 10,000-frame ones;
(e) one runner and one outbox-S3 worker taking four events in a row (1k, then 3 x 20k frames):
    their peak memory after each, to tell a one-time high-water mark from growth per video.

The runner, the inference workers and the outbox-S3 worker run as their own processes
(``video-runner serve | inference | outbox-s3``) with settings of their own (topics, groups,
buckets, database), so runs never see each other's messages. The load average is printed at the
start, with every part and at the end: a figure taken at a load above 1.5 does not count.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests"), str(HERE)]

from stack_services import (  # noqa: E402
    load,
    metric_total,
    peak_rss_mb,
    ports_of,
    say,
    services,
    status_times,
    until_ready,
)
from support.events import prepare_event, publish_results, result  # noqa: E402
from support.stack import isolated_settings, settings_env  # noqa: E402
from support.videos import real_video  # noqa: E402
from video_runner import bootstrap  # noqa: E402
from video_runner.domain.results import FrameResult  # noqa: E402

OBJECTS = [{"class": "person", "box": [10.5, 20.25, 110.0, 220.0], "conf": 0.87}] * 5


# -- (a), (b), (d) ----------------------------------------------------------------------------


async def prefill(store: Any, count: int) -> None:  # noqa: ANN401
    """``count`` stored results of other, finished events (1,000 frames each)."""
    for start in range(0, count, 1000):
        event_id = f"other-{start // 1000}"
        await store.save_results(
            [
                (event_id, FrameResult(frame_id=f * 5, timestamp_ms=f * 200, objects=OBJECTS))
                for f in range(min(1000, count - start))
            ]
        )


async def one_event(
    frames: int, prefilled: int, work: Path, *, early: bool = True
) -> dict[str, float]:
    settings = isolated_settings(work)
    await bootstrap.object_store(settings).ensure_bucket(settings.bucket_videos)
    store = bootstrap.prediction_store(settings)
    await store.ensure_indexes()
    try:
        await prefill(store, prefilled)
        await prepare_event(settings, store, "warm-up", list(range(0, 50, 5)))
        frame_ids = list(range(0, frames * 5, 5))
        # As the runner's video path does: the tasks, then the published notice (the outbox
        # may start the merge; ``early=False`` leaves it out, as a runner before it did).
        await prepare_event(settings, store, "measured", frame_ids, published_notice=early)
        with services(settings, work) as started:
            await until_ready(ports_of(settings, 0))
            # A first event assigns the partitions and warms every path up.
            await publish_results(settings, [result("warm-up", f) for f in range(0, 50, 5)])
            await status_times(store, "warm-up", 120)
            began = time.monotonic()
            await publish_results(settings, [result("measured", f, OBJECTS) for f in frame_ids])
            published = time.monotonic()
            predictable, ready = await status_times(store, "measured", 1200)
            runner_mb, outbox_mb = peak_rss_mb(started[0]), peak_rss_mb(started[-1])
    finally:
        await store.close()
    return {
        "results_per_s": frames / (predictable - began),
        "publish_s": published - began,
        "to_predictable_s": predictable - published,
        "to_ready_s": ready - published,
        "runner_peak_mb": runner_mb,
        "outbox_peak_mb": outbox_mb,
    }


async def part_a_b(prefills: list[int], base: Path) -> dict[int, dict[str, float]]:
    say(f"## (a) results/s and (b) last result -> predictable / ready   [load {load()}]")
    say("one event of 1,000 frames (5 objects each), results keyed by frame over 4 partitions")
    columns = ("other results stored", "results/s", "-> predictable s", "-> ready s")
    say(" ".join(f"{c:>{w}}" for c, w in zip(columns, (22, 10, 17, 11), strict=True)))
    figures = {}
    for count in prefills:
        row = await one_event(1000, count, base / f"a-{count}")
        figures[count] = row
        say(
            f"{count:>22,} {row['results_per_s']:>10.0f} {row['to_predictable_s']:>17.2f} "
            f"{row['to_ready_s']:>11.2f}   [load {load()}]"
        )
    first, last = figures[prefills[0]], figures[prefills[-1]]
    say(
        f"results/s with {prefills[-1]:,} stored / with {prefills[0]:,}: "
        f"{last['results_per_s'] / first['results_per_s']:.2f}"
    )
    return figures


async def part_d(base: Path, small: dict[str, float], *, compare_early: bool = False) -> None:
    """``compare_early``: the 54,000-frame event twice with its merge started at ``published``
    and twice without (alternating), instead of once with."""
    say()
    say(f"## (d) a 54,000-frame event (5 objects per frame)   [load {load()}]")
    say("peak RSS against the 1,000-frame event, with a 10,000-frame event between them")
    runs = [(10_000, True)]
    runs += (
        [(54_000, early) for _ in range(2) for early in (False, True)]
        if compare_early
        else [(54_000, True)]
    )
    for index, (frames, early) in enumerate(runs):
        row = await one_event(frames, 0, base / f"d-{index}-{frames}", early=early)
        merge = "merge from published" if early else "merge at predictable"
        say(
            f"{frames:,} frames, {merge}: results/s {row['results_per_s']:.0f}; last result"
            f" -> predictable {row['to_predictable_s']:.1f} s, -> ready {row['to_ready_s']:.1f}"
            f" s (predictable -> ready {row['to_ready_s'] - row['to_predictable_s']:.1f} s);"
            f" peak RSS runner {row['runner_peak_mb']:.0f} MB, outbox-s3"
            f" {row['outbox_peak_mb']:.0f} MB   [load {load()}]"
        )
    say(
        f"1,000 frames: peak RSS runner {small['runner_peak_mb']:.0f} MB, outbox-s3 "
        f"{small['outbox_peak_mb']:.0f} MB"
    )


async def part_e(base: Path) -> None:
    """One runner process, events one after another: does its memory come back down?"""
    say()
    say(f"## (e) one runner, four events in a row: memory across videos   [load {load()}]")
    work = base / "e"
    settings = isolated_settings(work)
    await bootstrap.object_store(settings).ensure_bucket(settings.bucket_videos)
    store = bootstrap.prediction_store(settings)
    await store.ensure_indexes()
    sizes = [1000, 20_000, 20_000, 20_000]
    try:
        for n, frames in enumerate(sizes):
            await prepare_event(settings, store, f"e{n}", list(range(0, frames * 5, 5)))
        with services(settings, work) as started:
            await until_ready(ports_of(settings, 0))
            for n, frames in enumerate(sizes):
                messages = [result(f"e{n}", f, OBJECTS) for f in range(0, frames * 5, 5)]
                await publish_results(settings, messages)
                await status_times(store, f"e{n}", 600)
                say(
                    f"after event {n + 1} ({frames:,} frames): peak RSS runner "
                    f"{peak_rss_mb(started[0]):.0f} MB, outbox-s3 {peak_rss_mb(started[-1]):.0f} MB"
                )
    finally:
        await store.close()


# -- (c) -------------------------------------------------------------------------------------


def timed(command: list[str], env: dict[str, str], log: Path) -> float:
    began = time.monotonic()
    with log.open("ab") as out:
        subprocess.run(command, env=env, stdout=out, stderr=out, check=True, timeout=1800)
    return time.monotonic() - began


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "video_runner.entrypoints.cli", *args]


async def part_c(videos: dict[str, tuple[Path, int]], base: Path) -> None:
    say()
    say(f"## (c) submit --wait against process (best of n runs, alternating)   [load {load()}]")
    say(f"{'video':<14} {'workers':>7} {'process s':>10} {'submit s':>9} {'ratio':>6}  shares")
    for workers in (1, 2):
        work = base / f"c-{workers}"
        settings = isolated_settings(work)
        await bootstrap.object_store(settings).ensure_bucket(settings.bucket_videos)
        env = settings_env(settings) | {"LOG_FORMAT": "json"}
        with services(settings, work, inference=workers):
            await until_ready(ports_of(settings, workers))
            for name, (video, repeats) in videos.items():
                local, served = [], []
                before = [
                    await metric_total(settings.inference_http_port + 1 + n, "frames_inferred")
                    for n in range(workers)
                ]
                for _ in range(repeats):
                    local.append(
                        timed(
                            cli("process", str(video), "--out", str(work / "p.json")),
                            env,
                            work / "process.log",
                        )
                    )
                    served.append(
                        timed(cli("submit", str(video), "--wait"), env, work / "submit.log")
                    )
                after = [
                    await metric_total(settings.inference_http_port + 1 + n, "frames_inferred")
                    for n in range(workers)
                ]
                done = [b - a for a, b in zip(before, after, strict=True)]
                shares = " ".join(f"{d / sum(done):.0%}" for d in done) if sum(done) else "-"
                say(
                    f"{name:<14} {workers:>7} {min(local):>10.1f} {min(served):>9.1f} "
                    f"{min(served) / min(local):>6.2f}  {shares}   [load {load()}]"
                )


def video_720p() -> Path:
    import extract  # bench/extract.py: builds and caches the benchmark videos

    return extract.ensure_videos()["720p"]


async def main() -> None:
    # Kafka clients log leader elections of freshly created topics as warnings: noise here.
    logging.basicConfig(level=logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefill", default="1000,10000,100000")
    parser.add_argument("--parts", default="abcde", help="which parts to run (default: abcde)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per program, bikes.mp4 (c)")
    parser.add_argument("--no-720p", action="store_true", help="(c) on bikes.mp4 only")
    parser.add_argument(
        "--compare-early",
        action="store_true",
        help="(d) the 54,000-frame event merged from published and at predictable, alternating",
    )
    args = parser.parse_args()
    say("# bench/results_path.py: the results path on the local stack")
    say(f"# {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    say(f"# load average at start: {load()}")
    with tempfile.TemporaryDirectory(prefix="bench-results-") as folder:
        base = Path(folder)
        small: dict[str, float] | None = None
        if "a" in args.parts or "b" in args.parts:
            figures = await part_a_b([int(n) for n in args.prefill.split(",")], base)
            small = next(iter(figures.values()))
        if "c" in args.parts:
            videos = {"bikes.mp4": (real_video("bikes.mp4"), args.repeats)}
            if not args.no_720p:
                # HOG on 1,004 frames of 720p takes minutes per run: one run of each program.
                videos["720p-5016f"] = (video_720p(), 1)
            await part_c(videos, base)
        if "d" in args.parts:
            if small is None:
                small = await one_event(1000, 0, base / "d-small")
            await part_d(base, small, compare_early=args.compare_early)
        if "e" in args.parts:
            await part_e(base)
    say()
    say(f"# load average at end: {load()}")


if __name__ == "__main__":
    asyncio.run(main())
