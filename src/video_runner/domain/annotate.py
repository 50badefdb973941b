"""Detections drawn on a frame: what the dashboard's annotated frames and ``render`` show.

Pure functions over a BGR, uint8 image (the layout OpenCV, the detectors and the extractor use):
the input is never modified, a drawn copy is returned.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]

#: Colours (BGR) chosen to stay apart from each other and readable under white text.
_PALETTE: tuple[tuple[int, int, int], ...] = (
    (48, 48, 230),
    (60, 160, 40),
    (200, 110, 20),
    (20, 140, 230),
    (160, 40, 160),
    (150, 150, 0),
    (40, 90, 170),
    (110, 60, 220),
)


def color_of(cls: str) -> tuple[int, int, int]:
    """One stable colour per class name, the same in every frame, run and process.

    ``hash()`` is salted per process, so a checksum picks the colour instead.
    """
    return _PALETTE[zlib.crc32(cls.encode("utf-8")) % len(_PALETTE)]


def color_hex(cls: str) -> str:
    """The class colour as CSS ``#rrggbb`` (the dashboard's legend and timeline)."""
    blue, green, red = color_of(cls)
    return f"#{red:02x}{green:02x}{blue:02x}"


def label_of(obj: Mapping[str, Any]) -> str:
    """``person 0.87``: the class and the confidence, as drawn above a box."""
    return f"{obj.get('class', '?')} {float(obj.get('conf', 0.0)):.2f}"


def draw_detections(image: Image, objects: Sequence[Mapping[str, Any]]) -> Image:
    """A copy of ``image`` with each object's box and label drawn.

    Objects are the final JSON's ``{"class", "box": [x1, y1, x2, y2], "conf"}``, boxes in pixels
    of this image. A box partly outside the image is clipped; one with no area inside it, or a
    malformed one, is skipped, so one bad object never hides the others.
    """
    drawn = image.copy()
    height, width = drawn.shape[:2]
    # Lines and text grow with the frame, so they read the same on 320 px and on 4K frames.
    thickness = max(2, round(min(width, height) / 180))
    scale = max(0.45, min(width, height) / 700)
    for obj in objects:
        box = _clipped_box(obj.get("box"), width, height)
        if box is None:
            continue
        x1, y1, x2, y2 = box
        color = color_of(str(obj.get("class", "?")))
        cv2.rectangle(drawn, (x1, y1), (x2, y2), color, thickness)
        _draw_label(drawn, label_of(obj), (x1, y1), color, scale=scale, thickness=thickness)
    return drawn


def _clipped_box(box: object, width: int, height: int) -> tuple[int, int, int, int] | None:
    if not isinstance(box, Sequence) or len(box) != 4:  # noqa: PLR2004 - x1, y1, x2, y2
        return None
    try:
        x1, y1, x2, y2 = (float(v) for v in box)
    except (TypeError, ValueError):
        return None
    if not all(np.isfinite([x1, y1, x2, y2])):
        return None
    left, right = sorted((x1, x2))
    top, bottom = sorted((y1, y2))
    left, top = max(0, round(left)), max(0, round(top))
    right, bottom = min(width - 1, round(right)), min(height - 1, round(bottom))
    if right <= left or bottom <= top:
        return None
    return left, top, right, bottom


def _draw_label(
    image: Image,
    text: str,
    corner: tuple[int, int],
    color: tuple[int, int, int],
    *,
    scale: float,
    thickness: int,
) -> None:
    font = cv2.FONT_HERSHEY_SIMPLEX
    text_thickness = max(1, thickness // 2)
    (text_w, text_h), baseline = cv2.getTextSize(text, font, scale, text_thickness)
    x, y = corner
    # Above the box when there is room, inside its top edge otherwise (objects at the top).
    top = y - text_h - baseline - 2 if y - text_h - baseline - 2 >= 0 else y
    cv2.rectangle(image, (x, top), (x + text_w + 2, top + text_h + baseline + 2), color, -1)
    cv2.putText(
        image, text, (x + 1, top + text_h + 1), font, scale, (255, 255, 255), text_thickness
    )


def sampled_rate(fps: float | None, every_n: int | None) -> Fraction:
    """Frames per second of a video of the sampled frames: the source rate over ``every_n``.

    29.97 fps sources are 30000/1001, so the rate is kept as a fraction; an unknown rate
    falls back to 25 fps.
    """
    source = Fraction(fps).limit_denominator(1001) if fps and fps > 0 else Fraction(25)
    return source / max(int(every_n or 1), 1)
