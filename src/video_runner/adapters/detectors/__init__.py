"""Detector backends behind the ``Detector`` port, and the factory that picks one from settings.

* ``hog``: :class:`HogPeopleDetector`, OpenCV's HOG people detector; no model file, weak.
* ``onnx``: :class:`OnnxYoloDetector`, a user's Ultralytics-exported YOLO ``.onnx``.

See docs/detectors.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from video_runner.adapters.detectors.hog import HogPeopleDetector
from video_runner.adapters.detectors.onnx_yolo import OnnxYoloDetector
from video_runner.errors import ConfigurationError

if TYPE_CHECKING:
    from pathlib import Path

    from video_runner.ports import Detector

__all__ = ["DETECTOR_KINDS", "HogPeopleDetector", "OnnxYoloDetector", "build_detector"]

DETECTOR_KINDS = ("hog", "onnx")


def build_detector(
    kind: str,
    *,
    onnx_model_path: str | Path | None = None,
    confidence: float = 0.25,
    iou: float = 0.45,
) -> Detector:
    """Build the detector named by ``kind`` (settings ``DETECTOR``).

    ``confidence`` and ``iou`` (settings ``ONNX_CONFIDENCE``, ``ONNX_IOU``) tune the ONNX
    backend only: HOG's scores are SVM margins on another scale, so it keeps its own defaults.

    Raises:
        ConfigurationError: an unknown kind; ``onnx`` without a model path, or with a file that
            is missing, unreadable or not a YOLO detection export.
    """
    normalized = kind.strip().lower()
    if normalized == "hog":
        return HogPeopleDetector()
    if normalized == "onnx":
        if onnx_model_path is None or not str(onnx_model_path).strip():
            raise ConfigurationError(
                "DETECTOR=onnx needs ONNX_MODEL_PATH, the path of a YOLO .onnx exported by "
                "Ultralytics (see docs/detectors.md)"
            )
        return OnnxYoloDetector(onnx_model_path, confidence=confidence, iou=iou)
    raise ConfigurationError(f"unknown DETECTOR {kind!r}; expected one of {DETECTOR_KINDS}")
