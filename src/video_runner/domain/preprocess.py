"""Preprocessing of a sampled frame: Gaussian blur, then contrast/brightness, then JPEG.

These are the seed system's exact OpenCV calls, kept as plain functions so that the extractor,
the tests' reference implementation and the benchmark's baseline all share one definition.
OpenCV releases the GIL inside each call, which is what lets the extractor run them in threads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import cv2
import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from video_runner.domain.params import Preprocessing

#: A BGR, uint8, H x W x 3 image (the layout OpenCV and the detectors use).
Image = npt.NDArray[np.uint8]


def preprocess(image: Image, p: Preprocessing) -> Image:
    """Blur with a ``blur_ksize`` square Gaussian kernel, then ``saturate(|alpha*x + beta|)``."""
    blurred = cv2.GaussianBlur(image, (p.blur_ksize, p.blur_ksize), 0)
    return cast("Image", cv2.convertScaleAbs(blurred, alpha=p.alpha, beta=p.beta))


def encode_jpeg(image: Image, quality: int) -> bytes:
    """Encode ``image`` as a baseline JPEG at ``quality`` (1..100)."""
    if not 1 <= quality <= 100:  # noqa: PLR2004 - JPEG's own range
        raise ValueError(f"quality must be within 1..100, got {quality}")
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"OpenCV could not encode an image of shape {image.shape} as JPEG")
    return bytes(buffer)


def decode_jpeg(data: bytes) -> Image:
    """Decode JPEG ``data`` into a BGR image; ``ValueError`` if it is not a decodable JPEG."""
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("not a decodable JPEG")
    return cast("Image", image)
