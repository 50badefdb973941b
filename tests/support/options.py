"""Events with ``payload.options`` on the real stack, and a detector whose answers are known."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from support.stack import publish
from video_runner import bootstrap
from video_runner.domain.detections import Detection
from video_runner.settings import Settings

#: What :class:`KnownDetector` finds in every image: two classes, confidences either side of 0.5.
KNOWN = (
    Detection("person", (1.0, 2.0, 10.0, 20.0), 0.9),
    Detection("person", (3.0, 4.0, 12.0, 22.0), 0.3),
    Detection("car", (5.0, 6.0, 14.0, 24.0), 0.8),
)


class KnownDetector:
    """Implements ``ports.Detector``: the same three detections in every image."""

    @property
    def name(self) -> str:
        return "known"

    def detect(self, images: Sequence[Any]) -> list[list[Detection]]:
        return [list(KNOWN) for _ in images]


def known_inference(settings: Settings) -> bootstrap.Inference:
    """An in-process inference worker that answers with :data:`KNOWN`."""
    return bootstrap.Inference(settings, detector_override=KnownDetector())


async def submit_with_options(
    settings: Settings, video: Path, event_id: str, options: Mapping[str, Any] | None
) -> None:
    """Upload ``video`` and publish its outbox event with ``payload.options``."""
    objects = bootstrap.object_store(settings)
    key = f"input/{event_id}.mp4"
    await objects.ensure_bucket(settings.bucket_videos)
    await objects.upload_file(settings.bucket_videos, key, video, "video/mp4")
    payload: dict[str, Any] = {"bucket": settings.bucket_videos, "object": key}
    if options is not None:
        payload["options"] = dict(options)
    await publish(
        settings, settings.topic_outbox_events, event_id, {"event_id": event_id, "payload": payload}
    )
