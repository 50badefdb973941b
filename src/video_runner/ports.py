"""The small interfaces the services depend on; adapters implement them, fakes too in unit tests."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

from video_runner.domain.detections import Detection
from video_runner.domain.prediction import Prediction
from video_runner.domain.results import FrameResult, ResultCounts
from video_runner.domain.sampling import SamplingPlan
from video_runner.domain.status import Status
from video_runner.domain.task_pages import TaskPage
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

    def extract(
        self, path: Path, plan: SamplingPlan | None = None
    ) -> AsyncGenerator[ExtractedFrame, None]:
        """Yield sampled frames in frame_id order; CPU work runs off the event loop.

        ``plan`` is this video's sampling (its event's options); ``None``: the source's default.

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


class Delivery(NamedTuple):
    """Where the broker stored a published message."""

    partition: int
    offset: int


class RawPublisher(Publisher, Protocol):
    """A publisher that can also send batches and copy a message as it came (dead letters)."""

    async def publish_many(
        self, topic: str, messages: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> list[Delivery]:
        """Publish (key, value) pairs; return once every one is acknowledged, where each went."""
        ...

    async def publish_raw(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Mapping[str, str]
    ) -> None: ...

    async def partitions(self, topic: str) -> int:
        """How many partitions ``topic`` has."""
        ...


class ConsumedOffsets(Protocol):
    """What a consumer group has committed: tells a queued task from a consumed one."""

    async def committed(self, group_id: str, topic: str) -> dict[int, int]:
        """The next offset the group will read, per partition of ``topic`` it has committed."""
        ...

    async def end_offsets(self, topic: str) -> dict[int, int]:
        """The offset the next message will get, per partition of ``topic``."""
        ...


class PredictionStore(Protocol):
    """The runner's documents in MongoDB (``runner_db``): events, task pages, results, progress.

    Every hot-path call touches documents by ``_id`` only, so its cost does not grow with the
    documents of other events (docs/decisions/0006). Every write is idempotent: an insert keyed by
    a natural ``_id`` (the first one wins) or a ``$set`` of the same values; a transition is won
    by exactly one caller through a unique claim. Errors: ``DependencyUnavailable``.
    """

    async def get(self, event_id: str) -> Prediction | None: ...

    async def begin(self, event_id: str, fields: Mapping[str, Any]) -> bool:
        """Create the document as ``processing`` or refresh it; False if its video path is over."""
        ...

    async def update_processing(self, event_id: str, fields: Mapping[str, Any]) -> bool:
        """``$set`` fields on a ``processing`` document; False if it is not processing."""
        ...

    async def annotate(self, event_id: str, fields: Mapping[str, Any]) -> None:
        """``$set`` bookkeeping fields (never the status) on a document in any state."""
        ...

    async def record_task_page(self, event_id: str, page: TaskPage) -> None:
        """Store (or replace) the records of one page of published frame tasks."""
        ...

    async def read_task_page(self, event_id: str, index: int) -> TaskPage | None: ...

    async def save_results(self, results: Sequence[tuple[str, FrameResult]]) -> list[bool]:
        """Insert (event_id, result) pairs in one bulk write; per pair, True if it was the first.

        A duplicate (the frame already has a result) is expected and changes nothing.
        """
        ...

    async def add_progress(self, event_id: str, partition: int, counts: ResultCounts) -> None:
        """Add first-time stored results to the event's counter for one results partition."""
        ...

    async def progress(self, event_id: str, partitions: int) -> ResultCounts:
        """The event's counters summed over ``partitions`` results partitions (by ``_id``)."""
        ...

    async def recount(self, event_id: str) -> ResultCounts:
        """Count the event's stored results (a scan: only the reconciler repairs with this)."""
        ...

    async def results_of(self, event_id: str, frame_ids: Sequence[int]) -> dict[int, FrameResult]:
        """The stored results of these frames, by frame id (frames without one are absent)."""
        ...

    async def transition(
        self,
        event_id: str,
        target: Status,
        fields: Mapping[str, Any],
        *,
        source: Status | None = None,
    ) -> bool:
        """Move to ``target`` if the state machine allows it and no other move won first;
        with ``source``, only from that state (and the moves only a named source may make).

        True for exactly one caller: the one that made the move. A caller that finds the move
        claimed but not applied (its winner died half-way) applies it, and gets False.
        """
        ...

    async def claim(self, event_id: str, name: str) -> bool:
        """Take the one-time claim ``name`` of an event: True for exactly one caller ever."""
        ...

    async def read_notice(self, event_id: str, status: Status) -> dict[str, Any] | None:
        """The claim of the terminal move to ``status`` when it holds that move's notice
        (``notice``, ``notice_id``, and ``log_position``/``notified_at`` once set), else None."""
        ...

    async def set_notice(self, event_id: str, status: Status, fields: Mapping[str, Any]) -> None:
        """``$set`` delivery bookkeeping on the claim that holds the notice."""
        ...

    async def pending_notices(self, before: datetime, limit: int = 100) -> list[dict[str, Any]]:
        """Notices in flight whose marker was last touched before ``before`` (repair only)."""
        ...

    async def pending_notice(self, notice_id: str) -> dict[str, Any] | None:
        """The marker of a notice in flight, by ``_id``."""
        ...

    async def update_pending(self, notice_id: str, fields: Mapping[str, Any]) -> None: ...

    async def drop_pending(self, notice_id: str) -> None:
        """The notice is published and its webhook done: forget its marker."""
        ...

    async def find(
        self,
        status: Status,
        *,
        before: datetime | None = None,
        after_id: str | None = None,
        unpurged: bool = False,
        limit: int = 100,
    ) -> list[Prediction]:
        """Events in ``status`` (last written before ``before``), by ``_id``, after ``after_id``;
        with ``unpurged``, only those whose per-frame documents were not deleted yet.

        A scan on servers without a secondary index: for repair loops only, page by page.
        """
        ...

    async def purge(
        self, event_id: str, frame_ids: Sequence[int], pages: int, partitions: int
    ) -> int:
        """Delete the event's per-frame documents (results, task pages, counters), by ``_id``."""
        ...

    async def ping(self) -> None: ...


class NoticeLog(Protocol):
    """The completion notices' topic, partition by partition (docs/decisions/0008)."""

    async def partition_for(self, topic: str, key: str) -> int:
        """The partition a message keyed ``key`` goes to (the producer's default partitioner)."""
        ...

    async def end_offset(self, topic: str, partition: int) -> int:
        """The offset the next message of this partition will get."""
        ...

    async def publish_at(
        self, topic: str, partition: int, key: str, value: Mapping[str, Any]
    ) -> Delivery:
        """Publish to this partition; returns once acknowledged (acks=all, idempotent)."""
        ...

    async def contains(
        self, topic: str, partition: int, start: int, key: str, notice_id: str
    ) -> bool:
        """Whether a message keyed ``key`` with this ``notice_id`` sits in the partition at
        ``start`` or later (up to its end when asked)."""
        ...

    async def close(self) -> None:
        """Release the connections kept between calls."""
        ...


class NoticeFeed(Protocol):
    """Follows the completion notices' topic from where it ended when ``start`` was called."""

    async def start(self, topic: str) -> None: ...

    async def poll(self, timeout_s: float) -> list[tuple[bytes | None, bytes | None]]:
        """(key, value) pairs that arrived since the last poll, waiting at most ``timeout_s``."""
        ...

    async def stop(self) -> None: ...


class WebhookSender(Protocol):
    """POSTs a body to a URL. Errors: ``DependencyUnavailable`` (no connection, timeout)."""

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        """Send; return the HTTP status the receiver answered."""
        ...


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
