"""Fitting a frame into a detector's square input as Ultralytics does, and mapping back."""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from video_runner.ports import Image

#: The padding colour Ultralytics trains and validates with.
LETTERBOX_GREY = (114, 114, 114)


class Letterbox:
    """How one frame was fitted into the model's input, to map boxes back."""

    __slots__ = ("gain", "height", "left", "top", "width")

    def __init__(self, gain: float, left: int, top: int, width: int, height: int) -> None:
        self.gain = gain
        self.left = left
        self.top = top
        self.width = width
        self.height = height


def letterbox(image: Image, size: tuple[int, int]) -> tuple[Image, Letterbox]:
    """Resize keeping the aspect ratio, pad to ``size`` (h, w) with grey, as Ultralytics does."""
    in_h, in_w = size
    height, width = image.shape[:2]
    gain = min(in_h / height, in_w / width)
    new_w, new_h = max(1, round(width * gain)), max(1, round(height * gain))
    pad_w, pad_h = (in_w - new_w) / 2, (in_h - new_h) / 2
    resized = image
    if (new_w, new_h) != (width, height):
        resized = np.asarray(
            cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR), np.uint8
        )
    # The 0.1 nudges split an odd padding the way Ultralytics does, so a model sees the very
    # pixels it saw at validation time.
    top, bottom = round(pad_h - 0.1), round(pad_h + 0.1)
    left, right = round(pad_w - 0.1), round(pad_w + 0.1)
    padded = np.asarray(
        cv2.copyMakeBorder(
            resized, top, bottom, left, right, cv2.BORDER_CONSTANT, value=LETTERBOX_GREY
        ),
        np.uint8,
    )
    return padded, Letterbox(gain, left, top, width, height)
