"""Real photographs with known content, read from the scikit-image wheel (never imported).

The wheel is downloaded once into ``${VIDEO_RUNNER_CACHE:-~/.cache/video-runner}/
scikit-image-0.24.0/``; only its ``skimage/data`` images are read, as a zip.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile

import cv2
import numpy as np

from support.videos import cache_dir

SKIMAGE_VERSION = "0.24.0"


def photo(name: str) -> np.ndarray:
    """``skimage/data/{name}`` (``astronaut.png``, ``chelsea.png``...) as a BGR uint8 image."""
    directory = cache_dir() / f"scikit-image-{SKIMAGE_VERSION}"
    wheels = sorted(directory.glob("scikit_image-*.whl"))
    if not wheels:
        directory.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                *(sys.executable, "-m", "pip", "download", "--no-deps", "--quiet"),
                *("--only-binary", ":all:", "--dest", str(directory)),
                f"scikit-image=={SKIMAGE_VERSION}",
            ],
            check=True,
        )
        wheels = sorted(directory.glob("scikit_image-*.whl"))
    with zipfile.ZipFile(wheels[0]) as archive:
        data = archive.read(f"skimage/data/{name}")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return np.asarray(image, np.uint8)
