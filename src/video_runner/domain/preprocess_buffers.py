"""The seed's preprocessing written into reused arrays, for a worker thread that runs it often.

Same OpenCV calls, same arguments as :func:`video_runner.domain.preprocess.preprocess`, so the
pixels are identical (tested); only the destination arrays differ. A fresh 2.7 MB (720p) or
6 MB (1080p) output per call costs the allocator an ``mmap``, then a page fault and zeroing for
each of its pages, then a ``munmap``, on every sampled frame and twice (blur, then contrast).
Writing into ``dst`` arrays kept per thread touches pages that are already mapped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from video_runner.domain.preprocess import Image

if TYPE_CHECKING:
    from video_runner.domain.params import Preprocessing


class PreprocessBuffers:
    """Destination arrays for one thread; the result is overwritten by the next call."""

    def __init__(self) -> None:
        self._arrays: dict[tuple[str, tuple[int, ...]], Image] = {}

    def array(self, role: str, shape: tuple[int, ...]) -> Image:
        """The array kept for ``role`` at ``shape`` (allocated on first use of that shape)."""
        key = (role, shape)
        array = self._arrays.get(key)
        if array is None:
            # One shape per role is kept: a video has one frame size; a new size replaces it.
            for stale in [k for k in self._arrays if k[0] == role]:
                del self._arrays[stale]
            array = self._arrays[key] = np.empty(shape, dtype=np.uint8)
        return array

    def preprocess(self, image: Image, p: Preprocessing) -> Image:
        """:func:`~video_runner.domain.preprocess.preprocess` into this thread's arrays."""
        blurred = self.array("blurred", image.shape)
        cv2.GaussianBlur(image, (p.blur_ksize, p.blur_ksize), 0, dst=blurred)
        out = self.array("out", image.shape)
        cv2.convertScaleAbs(blurred, dst=out, alpha=p.alpha, beta=p.beta)
        return out

    def rotate(self, image: Image, code: int) -> Image:
        """``cv2.rotate`` into this thread's array."""
        height, width = image.shape[:2]
        swapped = code in {cv2.ROTATE_90_CLOCKWISE, cv2.ROTATE_90_COUNTERCLOCKWISE}
        shape = (width, height, *image.shape[2:]) if swapped else image.shape
        out = self.array("rotated", shape)
        cv2.rotate(image, code, dst=out)
        return out
