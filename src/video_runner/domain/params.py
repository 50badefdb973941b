"""Parameters of the work, as values: sampling, preprocessing and input limits.

Defaults are the seed's: every 5th frame, Gaussian blur ksize=3, then alpha=1.3, beta=5.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Sampling:
    """Which decoded frames are kept: every ``every_n``-th, starting with frame 0."""

    every_n: int = 5

    def __post_init__(self) -> None:
        if self.every_n < 1:
            raise ValueError(f"every_n must be at least 1, got {self.every_n}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Preprocessing:
    """Blur, then contrast/brightness, then JPEG encoding."""

    blur_ksize: int = 3
    alpha: float = 1.3
    beta: float = 5.0
    jpeg_quality: int = 95

    def __post_init__(self) -> None:
        if self.blur_ksize < 1 or self.blur_ksize % 2 == 0:
            raise ValueError(f"blur_ksize must be a positive odd number, got {self.blur_ksize}")
        if not 1 <= self.jpeg_quality <= 100:  # noqa: PLR2004 - JPEG's own range
            raise ValueError(f"jpeg_quality must be within 1..100, got {self.jpeg_quality}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class VideoLimits:
    """What the runner refuses to process; ``None`` means no limit.

    ``max_sampled_frames`` bounds the work one video may cause (an S3 object, a frame record and
    a Kafka task per sampled frame): a tiny file at 1,000 fps passes every other limit.
    """

    max_bytes: int | None = 10 * 1024**3
    max_pixels: int | None = 3840 * 2160
    max_duration_ms: int | None = 6 * 3600 * 1000
    max_sampled_frames: int | None = 100_000
