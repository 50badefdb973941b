"""The inference worker: ``inference_tasks`` in, ``inference_results`` out.

Reads each frame from S3, runs the detector, publishes the result and only then lets the loop
commit. A frame that cannot be read or detected yields a result with ``error``: the runner
counts it and decides by its failure ratio, instead of waiting for a result that never comes.
Concurrent tasks are gathered into batches for backends that gain from them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from video_runner.contracts import parse_inference_task, result_message
from video_runner.domain.detections import Detection, keep_wanted
from video_runner.domain.ids import task_key
from video_runner.domain.preprocess import decode_jpeg
from video_runner.domain.results import FrameResult
from video_runner.errors import PermanentError, RetriableError
from video_runner.ports import Detector, Image, Message, ObjectStore, RawPublisher, Telemetry
from video_runner.services.dead_letters import dead_letter

log = logging.getLogger(__name__)


class BatchingDetector:
    """Gathers concurrent ``detect`` calls into one batch, run in a worker thread.

    OpenCV and onnxruntime release the GIL while they compute, so a thread is enough to keep
    the event loop free; batching amortises per-call overhead where the backend supports it.
    """

    def __init__(self, detector: Detector, *, batch_size: int, max_wait_s: float = 0.01) -> None:
        self._detector = detector
        self._batch_size = batch_size
        self._max_wait_s = max_wait_s
        self._queue: asyncio.Queue[tuple[Image, asyncio.Future[list[Detection]]]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self._detector.name

    async def detect(self, image: Image) -> list[Detection]:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run())
        future: asyncio.Future[list[Detection]] = asyncio.get_running_loop().create_future()
        await self._queue.put((image, future))
        return await future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            deadline = time.monotonic() + self._max_wait_s
            while len(batch) < self._batch_size:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), timeout))
                except TimeoutError:
                    break
            images = [image for image, _ in batch]
            try:
                outputs = await asyncio.to_thread(self._detector.detect, images)
            except Exception as exc:  # noqa: BLE001 - find the frame at fault: retry one by one
                if len(batch) == 1:
                    _settle(batch[0][1], exc)
                    continue
                for image, future in batch:
                    await self._settle_alone(image, future)
                continue
            for (_, future), detections in zip(batch, outputs, strict=True):
                if not future.done():
                    future.set_result(detections)

    async def _settle_alone(self, image: Image, future: asyncio.Future[list[Detection]]) -> None:
        """Run one image by itself, so one bad frame cannot fail the healthy ones beside it."""
        try:
            detections = await asyncio.to_thread(self._detector.detect, [image])
        except Exception as exc:  # noqa: BLE001 - handed to the one waiting frame
            _settle(future, exc)
            return
        if not future.done():
            future.set_result(detections[0])

    async def close(self) -> None:
        """Stop the batching task and return once it has ended, so no task of this detector
        outlives it on the event loop (a model call already in its thread runs to its end)."""
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)


def _settle(future: asyncio.Future[list[Detection]], error: Exception) -> None:
    if not future.done():
        future.set_exception(error)


@dataclass(frozen=True, slots=True)
class InferenceConfig:
    results_topic: str
    dlq_suffix: str


class InferenceHandler:
    """Handles one ``inference_tasks`` message."""

    def __init__(
        self,
        config: InferenceConfig,
        *,
        objects: ObjectStore,
        publisher: RawPublisher,
        detector: BatchingDetector,
        telemetry: Telemetry,
        pick: Callable[[str | None], Awaitable[BatchingDetector]] | None = None,
    ) -> None:
        """``pick`` gives the detector a task names (``services.detector_pool``); without it
        every task runs on ``detector``."""
        self._pick = pick
        self._config = config
        self._objects = objects
        self._publisher = publisher
        self._detector = detector
        self._telemetry = telemetry

    async def handle(self, message: Message) -> None:
        try:
            task = parse_inference_task(message.value)
        except PermanentError as exc:
            await self.dead_letter(message, exc)
            return
        started = time.monotonic()
        error: str | None = None
        objects: list[dict[str, Any]] = []
        detector: BatchingDetector | None = self._detector
        try:
            if self._pick is not None:
                detector = None  # a detector that cannot be had names no model
                detector = await self._pick(task.detector)
            data = await self._objects.get_bytes(task.bucket, task.object_key)
            image = await asyncio.to_thread(decode_jpeg, data)
            detections = await (detector or self._detector).detect(image)
            objects = keep_wanted(
                [d.as_dict() for d in detections], task.classes, task.min_confidence
            )
        except PermanentError as exc:
            error = f"{exc.code}: {exc}"
        except ValueError as exc:  # an undecodable image, or a detector refusing its input
            error = f"bad_image: {exc}"
        except RetriableError:
            raise  # S3 is down: retry the task, do not record a failure
        except Exception as exc:
            log.exception(
                "detector failed", extra={"event_id": task.event_id, "frame_id": task.frame_id}
            )
            error = f"detector_error: {type(exc).__name__}: {exc}"
        result = FrameResult(
            frame_id=task.frame_id,
            timestamp_ms=task.timestamp_ms,
            objects=objects,
            error=error,
            model=None if detector is None else detector.name,
        )
        # Keyed by frame, like the task: one video's results spread over every runner replica.
        await self._publisher.publish(
            self._config.results_topic,
            task_key(task.event_id, task.frame_id),
            result_message(task.event_id, result, width=task.width, height=task.height),
        )
        duration = time.monotonic() - started
        self._telemetry.observe("stage_seconds", duration, stage="inference")
        self._telemetry.count("frames_inferred", status="error" if error else "ok")
        log.debug(
            "frame inferred",
            extra={
                "event_id": task.event_id,
                "frame_id": task.frame_id,
                "objects": len(objects),
                "duration_s": round(duration, 3),
                "error": error,
            },
        )

    async def dead_letter(self, message: Message, error: PermanentError) -> None:
        await dead_letter(self._publisher, message, error, self._config.dlq_suffix)
        self._telemetry.count("tasks_rejected", error_code=str(error.code))
