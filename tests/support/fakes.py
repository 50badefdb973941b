"""In-memory fakes of the ports: real, small implementations (not mocks) for fast unit tests.

Each fake follows the semantics its production adapter documents:

* ``FakePredictionStore`` mirrors ``adapters/mongo/``: claimed transitions, task pages, the
  first result of a frame wins, counters per results partition, ``updated_at`` on every write;
* ``FakeObjectStore`` mirrors ``adapters/s3.py``: ``SourceMissing`` for a missing key,
  ``InvalidVideo(file_too_large)`` above ``max_bytes``, bytes never shared with the caller;
* ``FakePublisher`` records what an acknowledged publish would have sent.

Every ``async`` method yields to the event loop once before it acts, like a round trip to a
server would, so concurrent callers interleave; each write then happens without a further
``await``, which is what makes a conditional update atomic in the real store too.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import threading
import time
import zlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from video_runner.adapters.mongo import new_event_document, pending_notice_document
from video_runner.adapters.mongo.documents import notice_claim_of, pending_notice_of, prediction_of
from video_runner.contracts.notice import notice_for, notice_json
from video_runner.domain.detections import Detection
from video_runner.domain.notice_records import NoticeClaim, PendingNotice
from video_runner.domain.prediction import Prediction
from video_runner.domain.results import FrameResult, ResultCounts
from video_runner.domain.sampling import SamplingPlan
from video_runner.domain.status import Status, can_move, claim_name, claim_names
from video_runner.domain.task_pages import TaskPage
from video_runner.domain.video import ExtractedFrame, VideoInfo
from video_runner.errors import DependencyUnavailable, ErrorCode, InvalidVideo, SourceMissing
from video_runner.ports import Delivery
from video_runner.settings import Settings, load_settings

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

# --------------------------------------------------------------------------------------------
# Time


class FakeClock:
    """A clock the test moves by hand; tz-aware UTC like PyMongo's ``tz_aware=True`` documents."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2024, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def _real_now() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------------------------
# PredictionStore


def _set_path(document: dict[str, Any], path: str, value: Any) -> None:
    """``$set`` semantics: a dotted path sets a nested field, creating the parents it needs."""
    *parents, last = path.split(".")
    target = document
    for part in parents:
        child = target.get(part)
        if not isinstance(child, dict):
            child = {}
            target[part] = child
        target = child
    target[last] = copy.deepcopy(value)


def _get_path(document: Mapping[str, Any], path: str) -> Any:
    value: Any = document
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


@dataclass(frozen=True, slots=True)
class Transition:
    """One call of ``transition``, and whether it moved the document."""

    event_id: str
    target: Status
    moved: bool


class FakePredictionStore:
    """Implements ``ports.PredictionStore`` in memory, like ``MongoPredictionStore`` does.

    ``documents`` are the prediction documents by ``_id``; ``pages`` the task pages by
    (event_id, index); ``results`` the stored results by (event_id, frame_id); ``counters`` the
    per-partition progress by (event_id, partition); ``claims`` the one-time claims. Returned
    documents are copies, as a database returns them. ``scans`` counts the calls that a server
    without secondary indexes answers by reading a whole collection.
    """

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self.clock = clock or _real_now
        self.documents: dict[str, dict[str, Any]] = {}
        self.task_pages: dict[tuple[str, int], TaskPage] = {}
        #: The shared pages of each segment of a long video (``record_segment_pages``).
        self.segment_pages: dict[tuple[str, int], list[TaskPage]] = {}
        self.results: dict[tuple[str, int], FrameResult] = {}
        self.counters: dict[tuple[str, int], ResultCounts] = {}
        self.claims: dict[tuple[str, str], dict[str, Any]] = {}
        #: Pending completion notices (``runner_notices``) by notice id.
        self.notices: dict[str, dict[str, Any]] = {}
        self.notice_scans = 0
        self.transitions: list[Transition] = []
        self.scans = 0
        #: Results looked up by ``_id`` (one round trip each on a real server).
        self.lookups = 0
        self._unavailable = 0

    # -- test helpers -------------------------------------------------------------------------

    def fail_next(self, times: int = 1) -> None:
        """Make the next ``times`` calls raise ``DependencyUnavailable`` (MongoDB not answering)."""
        self._unavailable += times

    def moved_to(self, target: Status) -> list[Transition]:
        """The transitions to ``target`` that actually moved a document."""
        return [t for t in self.transitions if t.target == target and t.moved]

    def document(self, event_id: str) -> dict[str, Any] | None:
        """The stored document as a server would return it (a copy), or None."""
        document = self.documents.get(event_id)
        return None if document is None else copy.deepcopy(document)

    def stored_results(self, event_id: str) -> list[FrameResult]:
        return [r for (e, _), r in sorted(self.results.items()) if e == event_id]

    async def _round_trip(self) -> None:
        await asyncio.sleep(0)
        if self._unavailable:
            self._unavailable -= 1
            raise DependencyUnavailable("mongodb", "fake: not answering")

    # -- the port -----------------------------------------------------------------------------

    async def ping(self) -> None:
        await self._round_trip()

    async def get(self, event_id: str) -> Prediction | None:
        await self._round_trip()
        document = self.document(event_id)
        return None if document is None else prediction_of(document)

    async def begin(self, event_id: str, fields: Mapping[str, Any]) -> bool:
        await self._round_trip()
        document = self.documents.get(event_id)
        if document is None:
            self.documents[event_id] = new_event_document(
                event_id, copy.deepcopy(dict(fields)), self.clock()
            )
            return True
        if document["status"] != Status.PROCESSING.value or document["total_frames"] is not None:
            return False
        self._set(document, fields)
        return True

    def _set(self, document: dict[str, Any], fields: Mapping[str, Any]) -> None:
        for key, value in fields.items():
            _set_path(document, key, value)
        document["updated_at"] = self.clock()

    async def update_processing(self, event_id: str, fields: Mapping[str, Any]) -> bool:
        await self._round_trip()
        document = self.documents.get(event_id)
        if document is None or document["status"] != Status.PROCESSING.value:
            return False
        self._set(document, fields)
        return True

    async def annotate(self, event_id: str, fields: Mapping[str, Any]) -> None:
        await self._round_trip()
        document = self.documents.get(event_id)
        if document is not None:
            self._set(document, fields)

    async def transition(
        self,
        event_id: str,
        target: Status,
        fields: Mapping[str, Any],
        *,
        source: Status | None = None,
    ) -> bool:
        await self._round_trip()
        document = self.documents.get(event_id)
        moved = False
        current = None if document is None else Status(document["status"])
        if current is not None and source not in {None, current}:
            document = None
        if document is not None and can_move(
            Status(document["status"]), target, named=source is not None
        ):
            key = (event_id, claim_name(Status(document["status"])))
            applied = {**copy.deepcopy(dict(fields)), "status": target.value}
            claim: dict[str, Any] = {"event_id": event_id, "fields": applied}
            notice = notice_for(document, target, applied)
            if notice is not None:
                url = prediction_of(document).callback_url
                claim |= {
                    "notice": notice_json(notice),
                    "notice_id": notice.notice_id,
                    "callback_url": url,
                }
                self.notices.setdefault(
                    notice.notice_id,
                    pending_notice_document(notice.notice_id, event_id, target, url, self.clock()),
                )
            winner = self.claims.setdefault(key, claim)
            moved = winner is claim
            self._set(document, winner["fields"])
        self.transitions.append(Transition(event_id, target, moved))
        return moved

    async def claim(self, event_id: str, name: str) -> bool:
        await self._round_trip()
        if (event_id, name) in self.claims:
            return False
        self.claims[event_id, name] = {"at": self.clock()}
        return True

    async def claims_held(self, event_id: str, names: Sequence[str]) -> set[str]:
        await self._round_trip()
        return {name for name in names if (event_id, name) in self.claims}

    async def read_notice(self, event_id: str, status: Status) -> NoticeClaim | None:
        await self._round_trip()
        for name in claim_names(status):
            claim = self.claims.get((event_id, name))
            if claim is not None and claim.get("notice_id") == f"{event_id}/{status.value}":
                return notice_claim_of(claim, copy.deepcopy(claim["notice"]))
        return None

    async def set_notice(self, event_id: str, status: Status, fields: Mapping[str, Any]) -> None:
        await self._round_trip()
        for name in claim_names(status):
            claim = self.claims.get((event_id, name))
            if claim is not None and claim.get("notice_id") == f"{event_id}/{status.value}":
                claim.update(copy.deepcopy(dict(fields)))

    async def pending_notices(self, before: datetime, limit: int = 100) -> list[PendingNotice]:
        await self._round_trip()
        self.notice_scans += 1
        found = [m for _, m in sorted(self.notices.items()) if m["at"] < before]
        return [pending_notice_of(m) for m in found[:limit]]

    async def pending_notice(self, notice_id: str) -> PendingNotice | None:
        await self._round_trip()
        marker = self.notices.get(notice_id)
        return None if marker is None else pending_notice_of(marker)

    async def update_pending(self, notice_id: str, fields: Mapping[str, Any]) -> None:
        await self._round_trip()
        marker = self.notices.get(notice_id)
        if marker is not None:
            marker.update(copy.deepcopy(dict(fields)))

    async def drop_pending(self, notice_id: str) -> None:
        await self._round_trip()
        self.notices.pop(notice_id, None)

    async def find(
        self,
        status: Status,
        *,
        before: datetime | None = None,
        after_id: str | None = None,
        unpurged: bool = False,
        limit: int = 100,
    ) -> list[Prediction]:
        await self._round_trip()
        self.scans += 1
        found = sorted(
            (
                d
                for d in self.documents.values()
                if d["status"] == status.value
                and (before is None or d["updated_at"] < before)
                and (after_id is None or d["_id"] > after_id)
                and not (unpurged and d.get("purged_at") is not None)
            ),
            key=lambda d: str(d["_id"]),
        )
        return [prediction_of(d) for d in copy.deepcopy(found[:limit])]

    async def record_task_page(self, event_id: str, page: TaskPage) -> None:
        await self._round_trip()
        self.task_pages[event_id, page.index] = page

    async def read_task_page(self, event_id: str, index: int) -> TaskPage | None:
        await self._round_trip()
        return self.task_pages.get((event_id, index))

    async def record_segment_pages(
        self, event_id: str, segment: int, pages: Sequence[TaskPage]
    ) -> None:
        await self._round_trip()
        self.segment_pages[event_id, segment] = list(pages)

    async def read_segment_pages(self, event_id: str, segment: int) -> list[TaskPage]:
        await self._round_trip()
        return list(self.segment_pages.get((event_id, segment), []))

    async def save_results(self, results: Sequence[tuple[str, FrameResult]]) -> list[bool]:
        await self._round_trip()
        first = []
        for event_id, result in results:
            key = (event_id, result.frame_id)
            first.append(key not in self.results)
            self.results.setdefault(key, copy.deepcopy(result))
        return first

    async def add_progress(self, event_id: str, partition: int, counts: ResultCounts) -> None:
        await self._round_trip()
        key = (event_id, partition)
        stamped = ResultCounts(counts.stored, counts.failed, counts.last_at or self.clock())
        self.counters[key] = self.counters.get(key, ResultCounts()) + stamped

    async def progress(self, event_id: str, partitions: int) -> ResultCounts:
        await self._round_trip()
        total = ResultCounts()
        for partition in range(partitions):
            total += self.counters.get((event_id, partition), ResultCounts())
        return total

    async def recount(self, event_id: str) -> ResultCounts:
        await self._round_trip()
        self.scans += 1
        stored = self.stored_results(event_id)
        failed = sum(1 for r in stored if r.error is not None)
        return ResultCounts(len(stored), failed, self.clock())

    async def results_of(self, event_id: str, frame_ids: Sequence[int]) -> dict[int, FrameResult]:
        await self._round_trip()
        self.lookups += len(frame_ids)
        return {
            f: copy.deepcopy(self.results[event_id, f])
            for f in frame_ids
            if (event_id, f) in self.results
        }

    async def purge(
        self,
        event_id: str,
        frame_ids: Sequence[int],
        pages: int,
        partitions: int,
        segments: int = 0,
    ) -> int:
        await self._round_trip()
        deleted = 0
        tables: list[tuple[dict[Any, Any], list[Any]]] = [
            (self.results, [(event_id, f) for f in frame_ids]),
            (self.task_pages, [(event_id, k) for k in range(pages)]),
            (self.segment_pages, [(event_id, k) for k in range(segments)]),
            (self.counters, [(event_id, p) for p in range(partitions)]),
        ]
        for table, keys in tables:
            for key in keys:
                if table.pop(key, None) is not None:
                    deleted += 1
        return deleted

    # -- set-up helpers -----------------------------------------------------------------------

    def put(self, event_id: str, status: Status, **fields: Any) -> dict[str, Any]:
        """Seed a document directly (a state some earlier stage left behind)."""
        document = new_event_document(event_id, copy.deepcopy(fields), self.clock())
        document["status"] = status.value
        self.documents[event_id] = document
        return copy.deepcopy(document)


# --------------------------------------------------------------------------------------------
# ObjectStore


class FakeObjectStore:
    """Implements ``ports.ObjectStore`` (and ``ObjectRanges``) as a dict of bytes keyed by
    (bucket, key)."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.content_types: dict[tuple[str, str], str] = {}
        self.buckets: set[str] = set()
        self.downloads: list[tuple[str, str]] = []
        #: Objects read piece by piece (``ports.ObjectStream``).
        self.streamed: list[tuple[str, str]] = []
        #: Ranged reads (``ports.ObjectRanges``): bucket, key and how many bytes.
        self.ranges_read: list[tuple[str, str, int]] = []
        self._unavailable = 0

    def fail_next(self, times: int = 1) -> None:
        """Make the next ``times`` calls raise ``DependencyUnavailable`` (S3 not answering)."""
        self._unavailable += times

    async def _round_trip(self) -> None:
        await asyncio.sleep(0)
        if self._unavailable:
            self._unavailable -= 1
            raise DependencyUnavailable("s3", "fake: not answering")

    def _read(self, bucket: str, key: str, what: str) -> bytes:
        try:
            return self.objects[bucket, key]
        except KeyError:
            raise SourceMissing(f"{what} s3://{bucket}/{key}: not found (NoSuchKey)") from None

    async def download_to_file(
        self, bucket: str, key: str, path: Path, *, max_bytes: int | None = None
    ) -> int:
        await self._round_trip()
        self.downloads.append((bucket, key))
        data = self._read(bucket, key, "download")
        size = len(data)
        if max_bytes is not None and size > max_bytes:
            raise InvalidVideo(
                f"s3://{bucket}/{key} is {size} bytes, above the limit of {max_bytes}",
                code=ErrorCode.FILE_TOO_LARGE,
            )
        await asyncio.to_thread(path.write_bytes, data)
        return size

    async def size_of(self, bucket: str, key: str, *, max_bytes: int | None = None) -> int:
        await self._round_trip()
        size = len(self._read(bucket, key, "head"))
        if max_bytes is not None and size > max_bytes:
            raise InvalidVideo(
                f"s3://{bucket}/{key} is {size} bytes, above the limit of {max_bytes}",
                code=ErrorCode.FILE_TOO_LARGE,
            )
        return size

    async def read_range(self, bucket: str, key: str, start: int, end: int) -> bytes:
        await self._round_trip()
        self.ranges_read.append((bucket, key, end - start))
        return self._read(bucket, key, "get")[start:end]

    async def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str) -> None:
        await self._round_trip()
        self.buckets.add(bucket)
        self.objects[bucket, key] = bytes(data)
        self.content_types[bucket, key] = content_type

    async def get_bytes(self, bucket: str, key: str) -> bytes:
        await self._round_trip()
        return self._read(bucket, key, "get")

    async def upload_file(self, bucket: str, key: str, path: Path, content_type: str) -> None:
        await self._round_trip()
        self.buckets.add(bucket)
        self.objects[bucket, key] = await asyncio.to_thread(path.read_bytes)
        self.content_types[bucket, key] = content_type

    async def ensure_bucket(self, bucket: str) -> None:
        await self._round_trip()
        self.buckets.add(bucket)

    async def stream(self, bucket: str, key: str, piece: int = 64 * 1024) -> AsyncIterator[bytes]:
        await self._round_trip()
        data = self._read(bucket, key, "get")
        self.streamed.append((bucket, key))
        for start in range(0, len(data), piece):
            await asyncio.sleep(0)
            yield data[start : start + piece]

    async def keys_under(self, bucket: str, prefix: str, limit: int = 1000) -> list[str]:
        await self._round_trip()
        return sorted(k for b, k in self.objects if b == bucket and k.startswith(prefix))[:limit]

    async def delete_keys(self, bucket: str, keys: Sequence[str]) -> int:
        await self._round_trip()
        for key in keys:
            self.objects.pop((bucket, key), None)
        return len(keys)

    async def ping(self) -> None:
        await self._round_trip()


# --------------------------------------------------------------------------------------------
# Publisher


class Sent(NamedTuple):
    """An acknowledged message: ``str`` key and JSON value, or raw bytes from ``publish_raw``."""

    topic: str
    key: Any
    value: Any
    headers: dict[str, str]


class FakeConsumedOffsets:
    """Implements ``ports.ConsumedOffsets``: offsets are set by the test.

    ``committed_offsets`` answers for every group not in ``committed_by_group``; a topic not in
    ``ends`` has no partitions.
    """

    def __init__(self) -> None:
        self.committed_offsets: dict[int, int] = {}
        self.committed_by_group: dict[str, dict[int, int]] = {}
        self.ends: dict[str, dict[int, int]] = {}

    async def committed(self, group_id: str, topic: str) -> dict[int, int]:  # noqa: ARG002 - the port's signature
        await asyncio.sleep(0)
        return dict(self.committed_by_group.get(group_id, self.committed_offsets))

    async def end_offsets(self, topic: str) -> dict[int, int]:
        await asyncio.sleep(0)
        return dict(self.ends.get(topic, {}))


class FakePublisher:
    """Implements ``ports.RawPublisher``; ``sent`` holds every acknowledged message, in order."""

    def __init__(self, partition_count: int = 4) -> None:
        self.sent: list[Sent] = []
        self.calls = 0
        self.partition_count = partition_count
        #: The next offset of each (topic, partition), as a broker would assign it.
        self.next_offset: dict[tuple[str, int], int] = {}
        self._failures = 0
        self._healthy_calls = 0

    def fail_next(self, times: int = 1, *, after: int = 0) -> None:
        """Make ``times`` calls, after the next ``after`` ones, raise ``DependencyUnavailable``;
        they send nothing."""
        self._failures += times
        self._healthy_calls = after

    def on(self, topic: str) -> list[Sent]:
        return [s for s in self.sent if s.topic == topic]

    async def _round_trip(self) -> None:
        self.calls += 1
        await asyncio.sleep(0)
        if self._healthy_calls:
            self._healthy_calls -= 1
        elif self._failures:
            self._failures -= 1
            raise DependencyUnavailable("kafka", "fake: broker not answering")

    async def publish(
        self,
        topic: str,
        key: str,
        value: Mapping[str, Any],
        headers: Mapping[str, str] | None = None,
    ) -> None:
        await self._round_trip()
        self.sent.append(Sent(topic, key, copy.deepcopy(dict(value)), dict(headers or {})))

    async def publish_many(
        self, topic: str, messages: Sequence[tuple[str, Mapping[str, Any]]], *, spread: bool = False
    ) -> list[Delivery]:
        await self._round_trip()
        deliveries = []
        for index, (key, value) in enumerate(messages):
            by_key = zlib.crc32(key.encode()) % self.partition_count
            partition = index % self.partition_count if spread else by_key
            offset = self.next_offset.get((topic, partition), 0)
            self.next_offset[topic, partition] = offset + 1
            deliveries.append(Delivery(partition, offset))
            self.sent.append(Sent(topic, key, copy.deepcopy(dict(value)), {}))
        return deliveries

    async def partitions(self, topic: str) -> int:  # noqa: ARG002 - the port's signature
        await self._round_trip()
        return self.partition_count

    async def publish_raw(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Mapping[str, str]
    ) -> None:
        await self._round_trip()
        self.sent.append(Sent(topic, key, value, dict(headers)))


# --------------------------------------------------------------------------------------------
# FrameSource, Detector, Message


class FakeFrameSource:
    """Implements ``ports.FrameSource``: probe returns ``info`` (or raises ``probe_error``).

    ``extract`` yields ``frames`` in order, then raises ``extract_error`` if one is given (a
    decoder that fails part-way through a corrupt file). With ``hold_after``, it stops after
    that many frames (setting ``held``) until ``release`` is set: an extraction caught mid-video.
    """

    def __init__(
        self,
        frames: Sequence[ExtractedFrame] = (),
        *,
        info: VideoInfo | None = None,
        probe_error: InvalidVideo | None = None,
        extract_error: Exception | None = None,
        hold_after: int | None = None,
    ) -> None:
        self.frames = list(frames)
        self.hold_after = hold_after
        self.held = asyncio.Event()
        self.release = asyncio.Event()
        self.info = info or VideoInfo(
            width=64,
            height=48,
            fps=25.0,
            frame_count=len(self.frames) * 5,
            duration_ms=len(self.frames) * 200,
            rotation=0,
            codec="h264",
        )
        self.probe_error = probe_error
        self.extract_error = extract_error
        self.extracted: list[Path] = []
        #: The sampling plan each extraction was given.
        self.plans: list[SamplingPlan | None] = []
        #: (path, bytes of the file at probe time): what was downloaded before probing.
        self.probed: list[tuple[Path, bytes]] = []
        self.closed = 0

    def probe(self, path: Path) -> VideoInfo:
        self.probed.append((path, path.read_bytes()))
        if self.probe_error is not None:
            raise self.probe_error
        return self.info

    async def extract(
        self, path: Path, plan: SamplingPlan | None = None
    ) -> AsyncGenerator[ExtractedFrame, None]:
        self.extracted.append(path)
        self.plans.append(plan)
        try:
            for index, frame in enumerate(self.frames):
                if index == self.hold_after:
                    self.held.set()
                    await self.release.wait()
                await asyncio.sleep(0)
                yield frame
            if self.extract_error is not None:
                raise self.extract_error
        finally:
            self.closed += 1


class FakeDetector:
    """Implements ``ports.Detector``: one detection per image, naming the image's first pixel.

    The class of the detection is ``v<first byte of the image>``, so a caller can tell that it
    got the answer for its own image. ``batches`` records the size of every call.
    """

    def __init__(
        self,
        *,
        name: str = "fake-detector",
        delay_s: float = 0.0,
        error: Exception | None = None,
    ) -> None:
        self._name = name
        self.delay_s = delay_s
        self.error = error
        self.batches: list[int] = []
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._name

    def detect(self, images: Sequence[Any]) -> list[list[Detection]]:
        with self._lock:
            self.batches.append(len(images))
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.error is not None:
            raise self.error
        return [
            [Detection(cls=f"v{int(image[0, 0, 0])}", box=(1.0, 2.0, 3.0, 4.0), conf=0.5)]
            for image in images
        ]


@dataclass(frozen=True, slots=True)
class FakeMessage:
    """Implements ``ports.Message`` (what aiokafka's ``ConsumerRecord`` offers the services)."""

    topic: str
    partition: int = 0
    offset: int = 0
    key: bytes | None = None
    value: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = field(default=())


class RecordingTelemetry:
    """Implements ``ports.Telemetry``; keeps every count, observation and gauge."""

    def __init__(self) -> None:
        self.counts: list[tuple[str, float, dict[str, str]]] = []
        self.observations: list[tuple[str, float, dict[str, str]]] = []
        self.gauges: list[tuple[str, float, dict[str, str]]] = []

    def count(self, name: str, value: float = 1.0, **labels: str) -> None:
        self.counts.append((name, value, labels))

    def observe(self, name: str, seconds: float, **labels: str) -> None:
        self.observations.append((name, seconds, labels))

    def gauge(self, name: str, value: float, **labels: str) -> None:
        self.gauges.append((name, value, labels))

    def total(self, name: str, **labels: str) -> float:
        return sum(
            v
            for n, v, given in self.counts
            if n == name and all(given.get(k) == x for k, x in labels.items())
        )


# --------------------------------------------------------------------------------------------
# NoticeLog, WebhookSender


class FakeNoticeLog:
    """Implements ``ports.NoticeLog``: partitions of a topic as lists of (key, value).

    ``fail_next_publish`` makes a publish raise after the broker stored it (an acknowledgement
    lost on the way back, or a crash right after it), so a test can play both crash points.
    """

    def __init__(self, partition_count: int = 4) -> None:
        self.partition_count = partition_count
        self.partitions: dict[tuple[str, int], list[tuple[str, dict[str, Any]]]] = {}
        self.searches = 0
        self.closed = False
        self._lost_acks = 0
        self._unavailable = 0

    def fail_next(self, times: int = 1) -> None:
        """The next ``times`` calls raise ``DependencyUnavailable`` and store nothing."""
        self._unavailable += times

    def lose_next_ack(self, times: int = 1) -> None:
        """The next ``times`` publishes are stored, then raise as if the answer never came."""
        self._lost_acks += times

    async def _round_trip(self) -> None:
        await asyncio.sleep(0)
        if self._unavailable:
            self._unavailable -= 1
            raise DependencyUnavailable("kafka", "fake: broker not answering")

    def messages(self, topic: str) -> list[tuple[str, dict[str, Any]]]:
        return [m for (t, _), ms in sorted(self.partitions.items()) if t == topic for m in ms]

    async def partition_for(self, topic: str, key: str) -> int:  # noqa: ARG002 - the port's
        await self._round_trip()
        return zlib.crc32(key.encode()) % self.partition_count

    async def close(self) -> None:
        self.closed = True

    async def end_offset(self, topic: str, partition: int) -> int:
        await self._round_trip()
        return len(self.partitions.get((topic, partition), []))

    async def publish_at(
        self, topic: str, partition: int, key: str, value: Mapping[str, Any]
    ) -> Delivery:
        await self._round_trip()
        stored = self.partitions.setdefault((topic, partition), [])
        stored.append((key, copy.deepcopy(dict(value))))
        if self._lost_acks:
            self._lost_acks -= 1
            raise DependencyUnavailable("kafka", "fake: stored, but the answer was lost")
        return Delivery(partition, len(stored) - 1)

    async def contains(
        self, topic: str, partition: int, start: int, key: str, notice_id: str
    ) -> bool:
        await self._round_trip()
        self.searches += 1
        stored = self.partitions.get((topic, partition), [])[start:]
        return any(k == key and v.get("notice_id") == notice_id for k, v in stored)


class FakeWebhooks:
    """Implements ``ports.WebhookSender``: answers with the queued statuses, then ``default``.

    A queued ``None`` raises ``DependencyUnavailable`` (a refused connection or a timeout).
    """

    def __init__(self, *answers: int | None, default: int = 200) -> None:
        self.answers = list(answers)
        self.default = default
        self.posts: list[tuple[str, bytes, dict[str, str]]] = []

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        await asyncio.sleep(0)
        self.posts.append((url, body, dict(headers)))
        answer = self.answers.pop(0) if self.answers else self.default
        if answer is None:
            raise DependencyUnavailable("webhook", "fake: connection refused")
        return answer


ConfigT = TypeVar("ConfigT", bound="DataclassInstance")


def config_of(build: Callable[[Settings], ConfigT], **fields: Any) -> ConfigT:
    """A service's config as production makes it from default settings (``bootstrap.configs``),
    with ``fields`` changed: tests start from the defaults production runs with."""
    return dataclasses.replace(build(load_settings()), **fields)


if TYPE_CHECKING:
    # mypy checks each fake against the port it stands in for (make lint).
    from video_runner import ports

    _store: ports.PredictionStore = FakePredictionStore()
    _objects: ports.ObjectStore = FakeObjectStore()
    _stream: ports.ObjectStream = FakeObjectStore()
    _sweeper: ports.ObjectSweeper = FakeObjectStore()
    _publisher: ports.RawPublisher = FakePublisher()
    _offsets: ports.ConsumedOffsets = FakeConsumedOffsets()
    _frames: ports.FrameSource = FakeFrameSource([])
    _detector: ports.Detector = FakeDetector()
    _message: ports.Message = FakeMessage("topic")
    _notice_log: ports.NoticeLog = FakeNoticeLog()
    _webhooks: ports.WebhookSender = FakeWebhooks()
