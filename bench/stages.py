"""Where the CPU of one sampled frame goes: decode vs conversion, blur, contrast and JPEG.

Usage: ``PYTHONPATH=src python bench/stages.py [--tiny]`` (after ``bench/extract.py`` made its
inputs; ``--tiny`` uses the 144p inputs of ``bench/extract.py --tiny``, to check that it runs).
Run it with nothing else busy: the load average is printed with the figures.

Each stage is timed on the same 50 sampled 720p frames, best of 5 rounds, with OpenCV on one
thread so that the numbers are CPU cost, not parallel speed-up. All stages are measured in one
process, one after the other, so the ratios between them hold even on a noisy machine. The
output explains why the extractor cannot reach 0.85x of ``ffmpeg -f null`` on two cores: the
decoder alone already keeps both busy, and the seed's preprocessing adds a fixed cost per frame.

Where "preprocess + JPEG as shipped" loses time against its stages timed one by one (finding 1
of issue 11), two suspects are measured apart: JPEG is timed on the *final* image (contrast
stretched, so more detail to code) as well as on the blurred one, and the same calls are timed
writing into reused ``dst=`` arrays, with the minor page faults per frame of each way; and the
way the extractor ships: blur and contrast strip by strip, contrast as a 256-entry table
(``PreprocessBuffers``), against the same two calls over the whole frame into reused arrays.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import av
import cv2
import numpy as np

from extract import ensure_videos  # type: ignore[import-not-found]
from video_runner.domain.params import Preprocessing
from video_runner.domain.preprocess import Image, encode_jpeg, preprocess
from video_runner.extraction.preprocess_buffers import PreprocessBuffers

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


def page_faults(items: Sequence[T], stage: Callable[[T], object]) -> float:
    """Minor page faults per item: fresh large arrays fault on every page they touch."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for item in items:
        stage(item)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / len(items)


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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tiny", action="store_true", help="144p input: checks that it runs")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    video = ensure_videos(args.tiny)["720p"]
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        frames = [f for i, f in enumerate(container.decode(stream)) if i % EVERY_N == 0][:SAMPLES]
    images = [f.to_ndarray(format="bgr24") for f in frames]
    p = Preprocessing()
    blurred = [cv2.GaussianBlur(image, (p.blur_ksize, p.blur_ksize), 0) for image in images]
    final = [preprocess(image, p) for image in images]
    buffers = PreprocessBuffers()

    def shipped(image: Image) -> bytes:
        return encode_jpeg(preprocess(image, p), p.jpeg_quality)

    blur_out, contrast_out = np.empty_like(images[0]), np.empty_like(images[0])

    def whole_frame_dst(image: Image) -> bytes:
        # The seed's two calls over the whole frame, into arrays reused from frame to frame.
        cv2.GaussianBlur(image, (p.blur_ksize, p.blur_ksize), 0, dst=blur_out)
        cv2.convertScaleAbs(blur_out, dst=contrast_out, alpha=p.alpha, beta=p.beta)
        return encode_jpeg(contrast_out, p.jpeg_quality)

    def buffered(image: Image) -> bytes:
        return encode_jpeg(buffers.preprocess(image, p), p.jpeg_quality)

    stages = {
        "decode (per source frame)": decode_ms(video, SAMPLES * EVERY_N),
        "yuv -> bgr24 (swscale)": best_ms(frames, lambda f: f.to_ndarray(format="bgr24")),
        "GaussianBlur 3x3": best_ms(images, lambda i: cv2.GaussianBlur(i, (3, 3), 0)),
        "convertScaleAbs 1.3 / 5": best_ms(
            blurred, lambda i: cv2.convertScaleAbs(i, alpha=p.alpha, beta=p.beta)
        ),
        "JPEG q95 of the blurred image": best_ms(blurred, lambda i: encode_jpeg(i, 95)),
        "JPEG q95 of the final image": best_ms(final, lambda i: encode_jpeg(i, p.jpeg_quality)),
        "preprocess + JPEG (fresh arrays)": best_ms(images, shipped),
        "preprocess + JPEG (whole frame, dst=)": best_ms(images, whole_frame_dst),
        "preprocess + JPEG (strips, as shipped)": best_ms(images, buffered),
    }
    faults = {
        "fresh arrays": page_faults(images, shipped),
        "reused dst=": page_faults(images, buffered),
    }
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"# bench/stages.py: CPU ms per frame, {video.name}, OpenCV 1 thread, load {load}")
    print(f"# python {sys.version.split()[0]}, OpenCV {cv2.__version__}, PyAV {av.__version__}")
    for name, ms in stages.items():
        print(f"{name:<38} {ms:6.2f} ms")
    for name, count in faults.items():
        print(f"minor page faults per frame, preprocess + JPEG, {name}: {count:.0f}")
    decode = stages["decode (per source frame)"]
    shipped_ms = stages["preprocess + JPEG (strips, as shipped)"]
    per_sampled = stages["yuv -> bgr24 (swscale)"] + shipped_ms
    extra = per_sampled / EVERY_N
    print(f"work per sampled frame: {per_sampled:.2f} ms = {extra:.2f} ms per source frame")
    print(
        f"ceiling when decoding already fills every core: decode / (decode + extra) = "
        f"{decode:.2f} / {decode + extra:.2f} = {decode / (decode + extra):.2f}x of ffmpeg"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
