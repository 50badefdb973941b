"""A re-run's tasks on their way out: batches on ``inference_tasks``, and the task pages recording
where each went (the reaper and the merge read them, as for any event)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from video_runner.contracts import InferenceTask
from video_runner.domain.ids import frame_key, task_key
from video_runner.domain.prediction import Prediction
from video_runner.domain.task_pages import TaskPageAssembler
from video_runner.ports import PredictionStore, RawPublisher, Telemetry
from video_runner.services.task_publication import task_record


@dataclass(frozen=True, slots=True)
class ReinferConfig:
    frames_bucket: str
    tasks_topic: str
    results_topic: str
    dlq_suffix: str
    dlq_max_bytes: int
    max_message_bytes: int
    #: Tasks per Kafka batch (a fixed tuning, not a setting).
    publish_batch: int = 32


class RerunPublication:
    """A version's tasks in batches, and the task pages recording where each went."""

    def __init__(
        self,
        config: ReinferConfig,
        store: PredictionStore,
        publisher: RawPublisher,
        telemetry: Telemetry,
        *,
        target: tuple[Prediction, str, str | None],
    ) -> None:
        original, version_id, detector = target
        self._config = config
        self._store = store
        self._publisher = publisher
        self._telemetry = telemetry
        self._version_id = version_id
        self._root = original.event_id
        self._detector = detector
        video = original.document.get("video") or {}
        # The video's upright size is its JPEGs' size: the results parser clamps boxes to it.
        self._size = (video.get("width"), video.get("height"))
        self._classes = original.detector_classes
        self._min_confidence = original.min_confidence
        self._pages = TaskPageAssembler(config.frames_bucket)
        self._batch: list[tuple[int, InferenceTask]] = []

    async def add(self, ordinal: int, frame_id: int, timestamp_ms: Any) -> None:  # noqa: ANN401
        config = self._config
        width, height = self._size
        task = InferenceTask(
            event_id=self._version_id,
            frame_id=frame_id,
            bucket=config.frames_bucket,
            object_key=frame_key(self._root, frame_id),
            timestamp_ms=None if timestamp_ms is None else int(timestamp_ms),
            width=int(width) if width else None,
            height=int(height) if height else None,
            classes=self._classes,
            min_confidence=self._min_confidence,
            detector=self._detector,
        )
        self._batch.append((ordinal, task))
        if len(self._batch) >= config.publish_batch:
            await self._send()

    async def _send(self) -> None:
        batch = self._batch
        self._batch = []
        if not batch:
            return
        deliveries = await self._publisher.publish_many(
            self._config.tasks_topic,
            [(task_key(t.event_id, t.frame_id), t.as_message()) for _, t in batch],
        )
        self._telemetry.count("frames_published", len(batch))
        for (ordinal, task), delivery in zip(batch, deliveries, strict=True):
            record = task_record(task, delivery)
            page = self._pages.add(ordinal, record)
            if page is not None:
                await self._store.record_task_page(self._version_id, page)

    async def finish(self) -> None:
        await self._send()
        for page in self._pages.finish():
            await self._store.record_task_page(self._version_id, page)
