"""Where the CPU of one sampled frame goes: decode vs conversion, blur, contrast and JPEG.

Usage: ``PYTHONPATH=src python bench/stages.py`` (after ``bench/extract.py`` made its inputs).

Each stage is timed on the same 50 sampled 720p frames, best of 5 rounds, with OpenCV on one
thread so that the numbers are CPU cost, not parallel speed-up. All stages are measured in one
process, one after the other, so the ratios between them hold even on a noisy machine. The
output explains why the extractor cannot reach 0.85x of ``ffmpeg -f null`` on two cores: the
decoder alone already keeps both busy, and the seed's preprocessing adds a fixed cost per frame.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import av
import cv2

from extract import ensure_videos  # type: ignore[import-not-found]
from video_runner.domain.params import Preprocessing
from video_runner.domain.preprocess import encode_jpeg, preprocess

T = TypeVar("T")
SAMPLES = 50
EVERY_N = 5


def best_ms(items: Sequence[T], stage: Callable[[T], object]) -> float:
    rounds = []
    for _ in range(5):
        started = time.perf_counter()
        for item in items:
            stage(item)
        rounds.append((time.perf_counter() - started) / len(items) * 1000)
    return min(rounds)


def decode_ms(path: Path, frames: int) -> float:
    """CPU ms per decoded frame, single-threaded decoder (the cost, not the wall time)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        started = time.process_time()
        for index, _ in enumerate(container.decode(stream)):
            if index + 1 >= frames:
                break
    return (time.process_time() - started) / frames * 1000


def main() -> int:
    cv2.setNumThreads(1)
    video = ensure_videos()["720p"]
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        frames = [f for i, f in enumerate(container.decode(stream)) if i % EVERY_N == 0][:SAMPLES]
    images = [f.to_ndarray(format="bgr24") for f in frames]
    p = Preprocessing()
    blurred = [cv2.GaussianBlur(image, (p.blur_ksize, p.blur_ksize), 0) for image in images]
    stages = {
        "decode (per source frame)": decode_ms(video, SAMPLES * EVERY_N),
        "yuv -> bgr24 (swscale)": best_ms(frames, lambda f: f.to_ndarray(format="bgr24")),
        "GaussianBlur 3x3": best_ms(images, lambda i: cv2.GaussianBlur(i, (3, 3), 0)),
        "convertScaleAbs 1.3 / 5": best_ms(
            blurred, lambda i: cv2.convertScaleAbs(i, alpha=p.alpha, beta=p.beta)
        ),
        "JPEG q95": best_ms(blurred, lambda i: encode_jpeg(i, p.jpeg_quality)),
        "preprocess + JPEG (as shipped)": best_ms(
            images, lambda i: encode_jpeg(preprocess(i, p), p.jpeg_quality)
        ),
    }
    print(f"# bench/stages.py: CPU ms per frame, 720p, {video.name}, OpenCV 1 thread")
    print(f"# python {sys.version.split()[0]}, OpenCV {cv2.__version__}, PyAV {av.__version__}")
    for name, ms in stages.items():
        print(f"{name:<34} {ms:6.2f} ms")
    decode = stages["decode (per source frame)"]
    per_sampled = stages["yuv -> bgr24 (swscale)"] + stages["preprocess + JPEG (as shipped)"]
    extra = per_sampled / EVERY_N
    print(f"work per sampled frame: {per_sampled:.2f} ms = {extra:.2f} ms per source frame")
    print(
        f"ceiling when decoding already fills every core: decode / (decode + extra) = "
        f"{decode:.2f} / {decode + extra:.2f} = {decode / (decode + extra):.2f}x of ffmpeg"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
