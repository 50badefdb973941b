"""An H.264 file written with PyAV from BGR frames: the sink of annotated videos (``render``)."""

from __future__ import annotations

import contextlib
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast

import av
import cv2
import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]
_FORMATS = {".mkv": "matroska", ".mov": "mov"}


class H264Writer:
    """Encodes frames at a constant ``rate`` into ``path`` (MP4 unless it ends in .mkv or .mov).

    The file appears at ``path`` only once complete: frames go to a partial file renamed by
    ``close``, so an interrupted render never leaves a truncated video behind under its name.
    The size is the first frame's, rounded down to even numbers (yuv420p needs them); later
    frames of another size are resized to it.
    """

    def __init__(self, path: Path, rate: Fraction, *, crf: int = 23) -> None:
        self.path = path
        self.rate = rate
        self.crf = crf
        self.frames = 0
        self._partial = path.with_name(f".{path.name}.part")
        self._container: Any = None
        self._stream: Any = None
        self._size: tuple[int, int] | None = None

    def write(self, image: Image) -> None:
        if self._size is None:
            self._open(image)
        assert self._size is not None  # noqa: S101 - set by _open
        width, height = self._size
        if image.shape[1] != width or image.shape[0] != height:
            image = np.ascontiguousarray(image[:height, :width])
            if image.shape[1] != width or image.shape[0] != height:
                image = cast(
                    "Image", cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
                )
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        self._container.mux(self._stream.encode(frame))
        self.frames += 1

    def _open(self, image: Image) -> None:
        height, width = image.shape[:2]
        if width < 2 or height < 2:  # noqa: PLR2004 - the smallest even size
            raise ValueError(f"a frame of {width}x{height} cannot be encoded as H.264")
        self._size = (width - width % 2, height - height % 2)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fmt = _FORMATS.get(self.path.suffix.lower(), "mp4")
        self._container = av.open(str(self._partial), mode="w", format=fmt)
        stream = self._container.add_stream("libx264", rate=self.rate)
        stream.width, stream.height = self._size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(self.crf), "preset": "veryfast"}
        self._stream = stream

    def close(self) -> None:
        """Flush the encoder and put the file in place (nothing is written without frames)."""
        if self._container is None:
            return
        try:
            self._container.mux(self._stream.encode(None))
        finally:
            self._container.close()
            self._container = None
        self._partial.replace(self.path)

    def abort(self) -> None:
        """Drop the partial file (the render failed)."""
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.close()
            self._container = None
        self._partial.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
