"""Detections: what a detector says about one frame."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Detection:
    """One object: its class name, its box in pixels of the frame (x1, y1, x2, y2), a confidence."""

    cls: str
    box: tuple[float, float, float, float]
    conf: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "class": self.cls,
            "box": [round(v, 2) for v in self.box],
            "conf": round(self.conf, 4),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Detection:
        x1, y1, x2, y2 = (float(v) for v in data["box"])
        return cls(cls=str(data["class"]), box=(x1, y1, x2, y2), conf=float(data["conf"]))


def keep_wanted(
    objects: list[dict[str, Any]],
    classes: Sequence[str] | None = None,
    min_confidence: float | None = None,
) -> list[dict[str, Any]]:
    """The detections an event asked for: of one of ``classes``, at least ``min_confidence``.

    ``None`` means no filter: the detector's own classes and threshold.
    """
    wanted = None if classes is None else frozenset(classes)
    return [
        item
        for item in objects
        if (wanted is None or item["class"] in wanted)
        and (min_confidence is None or item["conf"] >= min_confidence)
    ]
