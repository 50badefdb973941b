"""In-memory fakes of the ports: real, small implementations (not mocks) for fast unit tests.

Each fake follows the semantics its production adapter documents:

* ``FakePredictionStore`` mirrors ``adapters/mongo.py``: conditional writes on the status, one
  record per (event_id, frame_id), first result wins, leases, ``updated_at`` on every write;
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
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from video_runner.adapters.mongo import frame_result_of
from video_runner.domain.detections import Detection
from video_runner.domain.results import FrameResult
from video_runner.domain.status import Status, sources_of
from video_runner.domain.video import ExtractedFrame, VideoInfo
from video_runner.errors import DependencyUnavailable, ErrorCode, InvalidVideo, SourceMissing

# --------------------------------------------------------------------------------------------
# Time


def _published_result(record: Mapping[str, Any]) -> bool:
    """Like the adapter: only a frame whose task was published (it has ``object``) counts."""
    return "result" in record and "object" in record


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
    owner: str | None
    moved: bool


class FakePredictionStore:
    """Implements ``ports.PredictionStore`` in memory, like ``MongoPredictionStore`` does.

    ``documents`` are the prediction documents by ``_id``; ``frames`` the per-frame records by
    (event_id, frame_id). Returned documents are copies, as a database returns them.
    """

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self.clock = clock or _real_now
        self.documents: dict[str, dict[str, Any]] = {}
        self.frames: dict[tuple[str, int], dict[str, Any]] = {}
        self.transitions: list[Transition] = []
        self._unavailable = 0

    # -- test helpers -------------------------------------------------------------------------

    def fail_next(self, times: int = 1) -> None:
        """Make the next ``times`` calls raise ``DependencyUnavailable`` (MongoDB not answering)."""
        self._unavailable += times

    def moved_to(self, target: Status) -> list[Transition]:
        """The transitions to ``target`` that actually moved a document."""
        return [t for t in self.transitions if t.target == target and t.moved]

    async def _round_trip(self) -> None:
        await asyncio.sleep(0)
        if self._unavailable:
            self._unavailable -= 1
            raise DependencyUnavailable("mongodb", "fake: not answering")

    # -- the port -----------------------------------------------------------------------------

    async def ping(self) -> None:
        await self._round_trip()

    async def get(self, event_id: str) -> dict[str, Any] | None:
        await self._round_trip()
        document = self.documents.get(event_id)
        return None if document is None else copy.deepcopy(document)

    async def begin(self, event_id: str, fields: Mapping[str, Any]) -> bool:
        await self._round_trip()
        now = self.clock()
        document = self.documents.get(event_id)
        if document is None:
            document = {
                "_id": event_id,
                "status": Status.PROCESSING.value,
                "created_at": now,
                "frames_published": 0,
                "results_received": 0,
                "total_frames": None,
                "reaper_attempts": 0,
            }
            self.documents[event_id] = document
        elif document["status"] != Status.PROCESSING.value:
            return False  # the real upsert fails on the duplicate _id: already finished
        for key, value in fields.items():
            _set_path(document, key, value)
        document["updated_at"] = now
        return True

    async def update_processing(self, event_id: str, fields: Mapping[str, Any]) -> bool:
        await self._round_trip()
        document = self.documents.get(event_id)
        if document is None or document["status"] != Status.PROCESSING.value:
            return False
        for key, value in fields.items():
            _set_path(document, key, value)
        document["updated_at"] = self.clock()
        return True

    async def claim_reaping(self, event_id: str, attempts: int, now: datetime) -> bool:
        await self._round_trip()
        document = self.documents.get(event_id)
        if (
            document is None
            or document.get("status") != Status.PROCESSING
            or int(document.get("reaper_attempts") or 0) != attempts
        ):
            return False
        document["reaper_attempts"] = attempts + 1
        document["last_reaped_at"] = now
        document["updated_at"] = now
        return True

    async def record_frames(self, event_id: str, frames: Sequence[Mapping[str, Any]]) -> None:
        await self._round_trip()
        now = self.clock()
        for frame in frames:
            key = (event_id, int(frame["frame_id"]))
            record = self.frames.setdefault(key, {"event_id": event_id, "frame_id": key[1]})
            for name, value in frame.items():
                _set_path(record, name, value)
            record["event_id"] = event_id
            record["published_at"] = now

    async def save_result(self, event_id: str, result: FrameResult) -> bool:
        await self._round_trip()
        key = (event_id, result.frame_id)
        record = self.frames.get(key)
        if record is not None and "result" in record:
            return False  # first one wins; the real upsert hits the unique index
        if record is None:
            record = {"event_id": event_id, "frame_id": result.frame_id}
            self.frames[key] = record
        record["result"] = {
            "objects": copy.deepcopy(result.objects),
            "error": result.error,
            "model": result.model,
            "failed": result.error is not None,
        }
        record["result_at"] = self.clock()
        if result.timestamp_ms is not None:
            record["result_timestamp_ms"] = result.timestamp_ms
        return True

    async def count_results(self, event_id: str) -> tuple[int, int]:
        await self._round_trip()
        done = [r for (e, _), r in self.frames.items() if e == event_id and _published_result(r)]
        return len(done), sum(1 for r in done if r["result"]["failed"])

    async def pending_frames(self, event_id: str) -> list[dict[str, Any]]:
        await self._round_trip()
        pending = [
            copy.deepcopy(r)
            for (e, _), r in self.frames.items()
            if e == event_id and "result" not in r
        ]
        return sorted(pending, key=lambda r: r["frame_id"])

    async def iter_results(self, event_id: str) -> AsyncIterator[FrameResult]:
        await self._round_trip()
        keys = sorted(
            k for k, r in self.frames.items() if k[0] == event_id and _published_result(r)
        )
        for key in keys:
            yield frame_result_of(copy.deepcopy(self.frames[key]))

    async def transition(
        self, event_id: str, target: Status, fields: Mapping[str, Any], *, owner: str | None = None
    ) -> bool:
        await self._round_trip()
        document = self.documents.get(event_id)
        moved = (
            document is not None
            and document["status"] in {s.value for s in sources_of(target)}
            and (owner is None or document.get("lease_owner") == owner)
        )
        if moved and document is not None:
            for key, value in fields.items():
                _set_path(document, key, value)
            document["status"] = target.value
            document["updated_at"] = self.clock()
        self.transitions.append(Transition(event_id, target, owner, moved))
        return moved

    async def find(
        self, status: Status, *, older_than: datetime | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        await self._round_trip()
        found = [
            d
            for d in self.documents.values()
            if d["status"] == status.value
            and (
                older_than is None
                or (d.get("updated_at") is not None and d["updated_at"] < older_than)
            )
        ]
        found.sort(key=lambda d: d.get("updated_at") or datetime.min.replace(tzinfo=UTC))
        return copy.deepcopy(found[:limit])

    async def lease(
        self, status: Status, owner: str, until: datetime, now: datetime
    ) -> dict[str, Any] | None:
        await self._round_trip()
        free = [
            d
            for d in self.documents.values()
            if d["status"] == status.value
            and (d.get("lease_until") is None or d["lease_until"] < now)
        ]
        if not free:
            return None
        document = min(free, key=lambda d: d.get("updated_at") or datetime.min.replace(tzinfo=UTC))
        document["lease_owner"] = owner
        document["lease_until"] = until
        return copy.deepcopy(document)

    # -- set-up helpers -----------------------------------------------------------------------

    def put(self, event_id: str, status: Status, **fields: Any) -> dict[str, Any]:
        """Seed a document directly (a state some earlier stage left behind)."""
        now = self.clock()
        document: dict[str, Any] = {
            "_id": event_id,
            "status": status.value,
            "created_at": now,
            "updated_at": now,
            "frames_published": 0,
            "results_received": 0,
            "total_frames": None,
            "reaper_attempts": 0,
        }
        document.update(copy.deepcopy(fields))
        self.documents[event_id] = document
        return copy.deepcopy(document)


# --------------------------------------------------------------------------------------------
# ObjectStore


class FakeObjectStore:
    """Implements ``ports.ObjectStore`` as a dict of bytes keyed by (bucket, key)."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.content_types: dict[tuple[str, str], str] = {}
        self.buckets: set[str] = set()
        self.downloads: list[tuple[str, str]] = []
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


class FakePublisher:
    """Implements ``ports.RawPublisher``; ``sent`` holds every acknowledged message, in order."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self.calls = 0
        self._failures = 0

    def fail_next(self, times: int = 1) -> None:
        """Make the next ``times`` calls raise ``DependencyUnavailable``; they send nothing."""
        self._failures += times

    def on(self, topic: str) -> list[Sent]:
        return [s for s in self.sent if s.topic == topic]

    async def _round_trip(self) -> None:
        self.calls += 1
        await asyncio.sleep(0)
        if self._failures:
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
        self, topic: str, messages: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> None:
        await self._round_trip()
        self.sent.extend(Sent(topic, k, copy.deepcopy(dict(v)), {}) for k, v in messages)

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
    decoder that fails part-way through a corrupt file).
    """

    def __init__(
        self,
        frames: Sequence[ExtractedFrame] = (),
        *,
        info: VideoInfo | None = None,
        probe_error: InvalidVideo | None = None,
        extract_error: Exception | None = None,
    ) -> None:
        self.frames = list(frames)
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
        #: (path, bytes of the file at probe time): what was downloaded before probing.
        self.probed: list[tuple[Path, bytes]] = []
        self.closed = 0

    def probe(self, path: Path) -> VideoInfo:
        self.probed.append((path, path.read_bytes()))
        if self.probe_error is not None:
            raise self.probe_error
        return self.info

    async def extract(self, path: Path) -> AsyncGenerator[ExtractedFrame, None]:
        self.extracted.append(path)
        try:
            for frame in self.frames:
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
    """Implements ``services.telemetry.Telemetry``; keeps every count, observation and gauge."""

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
