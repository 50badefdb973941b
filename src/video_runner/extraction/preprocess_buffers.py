"""The seed's preprocessing written into reused arrays, in cache-sized strips, for worker threads.

Same pixels as :func:`video_runner.domain.preprocess.preprocess` (tested on random images of many
sizes and on real videos); only where the work happens differs, for two measured reasons
(``bench/stages.py``):

- A fresh 2.7 MB (720p) or 6 MB (1080p) output per call costs the allocator an ``mmap``, then a
  page fault and zeroing for each of its pages, then a ``munmap``, on every sampled frame and
  twice (blur, then contrast). Writing into ``dst`` arrays kept per thread touches pages that
  are already mapped.
- Blur then contrast over the whole frame streams it through memory twice. Done strip by strip
  (a band of rows plus the ``ksize // 2`` rows the kernel reaches past it, so each output row
  sees exactly the neighbours it sees in the whole frame), the blurred band is still in the
  CPU's cache when the contrast step reads it.

Contrast/brightness on 8-bit pixels is a function of one byte, so it is applied as a 256-entry
table that ``cv2.convertScaleAbs`` itself fills; the table is used only when OpenCV's vector and
scalar code paths agree on all 256 values (they may round ``alpha * x + beta`` differently), and
otherwise the call is made as is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import cv2
import numpy as np

from video_runner.domain.preprocess import Image

if TYPE_CHECKING:
    from video_runner.domain.params import Preprocessing

#: Bytes of one strip: well inside a core's L2 cache, with its blurred copy beside it.
_STRIP_BYTES = 128 * 1024
_MIN_STRIP_ROWS = 8


class PreprocessBuffers:
    """Destination arrays for one thread; the result is overwritten by the next call."""

    def __init__(self) -> None:
        self._arrays: dict[tuple[str, tuple[int, ...]], Image] = {}
        self._tables: dict[tuple[float, float], Image | None] = {}

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
        out = self.array("out", image.shape)
        table = self._table(p.alpha, p.beta)
        height = image.shape[0]
        reach = p.blur_ksize // 2
        row_bytes = max(1, image[0].nbytes)
        rows = max(_MIN_STRIP_ROWS, _STRIP_BYTES // row_bytes)
        band = self.array("band", (min(height, rows + 2 * reach), *image.shape[1:]))
        for top in range(0, height, rows):
            bottom = min(height, top + rows)
            # The kernel's reach past the band, clipped at the frame's edges: there the border
            # rule applies to the band exactly as it does to the whole frame.
            first, last = max(0, top - reach), min(height, bottom + reach)
            blurred = band[: last - first]
            cv2.GaussianBlur(image[first:last], (p.blur_ksize, p.blur_ksize), 0, dst=blurred)
            inner = blurred[top - first : top - first + (bottom - top)]
            if table is None:
                cv2.convertScaleAbs(inner, dst=out[top:bottom], alpha=p.alpha, beta=p.beta)
            else:
                cv2.LUT(inner, table, dst=out[top:bottom])
        return out

    def _table(self, alpha: float, beta: float) -> Image | None:
        key = (alpha, beta)
        if key not in self._tables:
            self._tables[key] = contrast_table(alpha, beta)
        return self._tables[key]

    def rotate(self, image: Image, code: int) -> Image:
        """``cv2.rotate`` into this thread's array."""
        height, width = image.shape[:2]
        swapped = code in {cv2.ROTATE_90_CLOCKWISE, cv2.ROTATE_90_COUNTERCLOCKWISE}
        shape = (width, height, *image.shape[2:]) if swapped else image.shape
        out = self.array("rotated", shape)
        cv2.rotate(image, code, dst=out)
        return out


def contrast_table(alpha: float, beta: float) -> Image | None:
    """``convertScaleAbs(x, alpha, beta)`` for every byte ``x``; ``None`` if its paths disagree."""
    values = np.arange(256, dtype=np.uint8)
    # 256 values in one call go through the vector code; one value at a time, the scalar tail.
    vector = cast("Image", cv2.convertScaleAbs(values.reshape(1, 256), alpha=alpha, beta=beta))
    scalar = [
        int(cv2.convertScaleAbs(values[i : i + 1].reshape(1, 1), alpha=alpha, beta=beta)[0, 0])
        for i in range(256)
    ]
    if vector.ravel().tolist() != scalar:
        return None
    return vector
