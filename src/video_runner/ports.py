"""The small interfaces the services depend on; adapters implement them, fakes too in unit tests."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from video_runner.domain.detections import Detection
from video_runner.domain.results import FrameResult
from video_runner.domain.status import Status
from video_runner.domain.video import ExtractedFrame, VideoInfo

Image = npt.NDArray[np.uint8]


class ObjectStore(Protocol):
    """An S3 bucket store. Errors: ``SourceMissing`` (no such key), ``DependencyUnavailable``."""

    async def download_to_file(
        self, bucket: str, key: str, path: Path, *, max_bytes: int | None = None
    ) -> int:
        """Stream the object to ``path`` (never whole in memory); return its size in bytes."""
        ...

    async def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str) -> None: ...

    async def get_bytes(self, bucket: str, key: str) -> bytes: ...

    async def upload_file(self, bucket: str, key: str, path: Path, content_type: str) -> None: ...

    async def ensure_bucket(self, bucket: str) -> None: ...

    async def ping(self) -> None: ...


class Publisher(Protocol):
    """Publishes JSON messages; ``publish`` returns once the broker has acknowledged (acks=all)."""

    async def publish(
        self,
        topic: str,
        key: str,
        value: Mapping[str, Any],
        headers: Mapping[str, str] | None = None,
    ) -> None: ...


class FrameSource(Protocol):
    """Decodes a local video file into sampled, preprocessed JPEG frames."""

    def probe(self, path: Path) -> VideoInfo:
        """Validate the file and read its properties; raises ``InvalidVideo`` if unusable."""
        ...

    def extract(self, path: Path) -> AsyncGenerator[ExtractedFrame, None]:
        """Yield sampled frames in frame_id order; CPU work runs off the event loop.

        Closing the generator early (``aclose``) stops the decoder and frees its resources.
        """
        ...


class Detector(Protocol):
    """Finds objects in images (BGR, uint8, H x W x 3)."""

    @property
    def name(self) -> str: ...

    def detect(self, images: Sequence[Image]) -> list[list[Detection]]:
        """Return one list of detections per image, boxes in that image's pixels."""
        ...


class RawPublisher(Publisher, Protocol):
    """A publisher that can also send batches and copy a message as it came (dead letters)."""

    async def publish_many(
        self, topic: str, messages: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> None:
        """Publish (key, value) pairs and return once every one is acknowledged."""
        ...

    async def publish_raw(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Mapping[str, str]
    ) -> None: ...


class PredictionStore(Protocol):
    """The runner's documents in MongoDB (``runner_db``): one per event, one per frame.

    Every write is idempotent: conditional on the current status, or an upsert keyed by a unique
    index, so redelivered messages change nothing. Errors: ``DependencyUnavailable``.
    """

    async def get(self, event_id: str) -> dict[str, Any] | None: ...

    async def begin(self, event_id: str, fields: Mapping[str, Any]) -> bool:
        """Create the document as ``processing`` or refresh it; False if it is already finished."""
        ...

    async def update_processing(self, event_id: str, fields: Mapping[str, Any]) -> bool:
        """``$set`` fields on a ``processing`` document; False if it is not processing."""
        ...

    async def record_frames(self, event_id: str, frames: Sequence[Mapping[str, Any]]) -> None:
        """Upsert the frame records (frame_id, timestamp_ms, width, height, object) of tasks."""
        ...

    async def save_result(self, event_id: str, result: FrameResult) -> bool:
        """Store a frame's result once; False when that frame already had one (a duplicate)."""
        ...

    async def count_results(self, event_id: str) -> tuple[int, int]:
        """Distinct frames with a result, and how many of them are detector errors."""
        ...

    async def pending_frames(self, event_id: str) -> list[dict[str, Any]]:
        """Frame records that have no result yet."""
        ...

    def iter_results(self, event_id: str) -> AsyncIterator[FrameResult]:
        """Every stored result of the event, sorted by frame_id."""
        ...

    async def transition(
        self, event_id: str, target: Status, fields: Mapping[str, Any], *, owner: str | None = None
    ) -> bool:
        """Move to ``target`` only from a state that may (and held by ``owner`` if given)."""
        ...

    async def find(
        self, status: Status, *, older_than: datetime | None = None, limit: int = 100
    ) -> list[dict[str, Any]]: ...

    async def lease(
        self, status: Status, owner: str, until: datetime, now: datetime
    ) -> dict[str, Any] | None:
        """Take one document in ``status`` whose lease is free or expired, for ``owner``."""
        ...

    async def claim_reaping(self, event_id: str, attempts: int, now: datetime) -> bool:
        """Count one more reaper attempt, only if it is still ``attempts``: one replica wins."""
        ...

    async def ping(self) -> None: ...


class Message(Protocol):
    """A consumed message, as the services see it (aiokafka's ConsumerRecord fits)."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...

    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes | None: ...
