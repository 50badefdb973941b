"""Detector backends behind the ``Detector`` port, and the factory that picks one from settings.

* ``hog``: :class:`HogPeopleDetector`, OpenCV's HOG people detector; no model file, weak.
* ``onnx``: :class:`OnnxYoloDetector`, a YOLO ``.onnx``: the bundled YOLOv4-tiny (the
  default, see ``bundled``) or a user's own (an Ultralytics export, or a converted Darknet model).

See docs/detectors.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from video_runner.adapters.detectors.bundled import bundled_model_path
from video_runner.adapters.detectors.hog import HogPeopleDetector
from video_runner.adapters.detectors.onnx_yolo import OnnxYoloDetector
from video_runner.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from video_runner.ports import Detector

__all__ = ["DETECTOR_KINDS", "HogPeopleDetector", "OnnxYoloDetector", "build_detector"]

DETECTOR_KINDS = ("hog", "onnx")


def build_detector(
    kind: str,
    *,
    onnx_model_path: str | Path | None,
    model_dir: str | Path,
    confidence: float,
    iou: float,
    threads: int,
    providers: Sequence[str],
) -> Detector:
    """Build the detector named by ``kind`` (settings ``DETECTOR``; the others likewise).

    ``onnx`` opens ``onnx_model_path``, or without one the bundled model in ``model_dir``.
    ``confidence``, ``iou``, ``threads`` and ``providers`` tune the ONNX backend only: HOG's
    scores are SVM margins on another scale, so it keeps its own defaults.

    Raises:
        ConfigurationError: an unknown kind; a model file that is missing (the bundled one not
            installed), unreadable or not a YOLO detection layout.
    """
    normalized = kind.strip().lower()
    if normalized == "hog":
        return HogPeopleDetector()
    if normalized == "onnx":
        path = onnx_model_path or bundled_model_path(model_dir)
        return OnnxYoloDetector(
            path, confidence=confidence, iou=iou, threads=threads, providers=providers
        )
    raise ConfigurationError(f"unknown DETECTOR {kind!r}; expected one of {DETECTOR_KINDS}")
