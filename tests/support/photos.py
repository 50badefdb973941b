"""Real photographs with known content, read from the scikit-image wheel (never imported)."""

from __future__ import annotations

import cv2
import numpy as np

from support.wheels import wheel_member

SKIMAGE_VERSION = "0.24.0"


def photo(name: str) -> np.ndarray:
    """``skimage/data/{name}`` (``astronaut.png``, ``chelsea.png``...) as a BGR uint8 image."""
    data = wheel_member("scikit-image", SKIMAGE_VERSION, f"skimage/data/{name}")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return np.asarray(image, np.uint8)
