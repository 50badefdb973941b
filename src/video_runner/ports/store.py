"""The runner's documents in MongoDB (``runner_db``), as three small ports and their union.

Every hot-path call touches documents by ``_id`` only, so its cost does not grow with the
documents of other events (docs/decisions/0006). Every write is idempotent: an insert keyed by a
natural ``_id`` (the first one wins) or a ``$set`` of the same values; a transition is won by
exactly one caller through a unique claim. Errors: ``DependencyUnavailable``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from video_runner.domain.notice_records import NoticeClaim, PendingNotice
from video_runner.domain.prediction import Prediction
from video_runner.domain.results import FrameResult, ResultCounts
from video_runner.domain.status import Status
from video_runner.domain.task_pages import TaskPage


class EventStore(Protocol):
    """Prediction documents: their state, their moves, and the one-time claims that guard them."""

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

    async def claims_held(self, event_id: str, names: Sequence[str]) -> set[str]:
        """Which of the claims ``names`` of an event are taken (by ``_id``; none is taken)."""
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

    async def ping(self) -> None: ...


class ResultStore(Protocol):
    """Per-frame documents: where each task went (task pages), results, progress counters."""

    async def record_task_page(self, event_id: str, page: TaskPage) -> None:
        """Store (or replace) the records of one page of published frame tasks."""
        ...

    async def read_task_page(self, event_id: str, index: int) -> TaskPage | None: ...

    async def record_segment_pages(
        self, event_id: str, segment: int, pages: Sequence[TaskPage]
    ) -> None:
        """Store (or replace) a segment's pages that other segments share (its first and last
        ones), in a document of its own: two runners never write one document at once."""
        ...

    async def read_segment_pages(self, event_id: str, segment: int) -> list[TaskPage]:
        """A segment's shared pages as it recorded them (none before it did)."""
        ...

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

    async def purge(
        self,
        event_id: str,
        frame_ids: Sequence[int],
        pages: int,
        partitions: int,
        segments: int = 0,
    ) -> int:
        """Delete the event's per-frame documents (results, task pages, the pages of its
        ``segments``, counters), by ``_id``."""
        ...


class NoticeStore(Protocol):
    """Completion notices in flight: on the terminal move's claim, and their pending markers."""

    async def read_notice(self, event_id: str, status: Status) -> NoticeClaim | None:
        """The claim of the terminal move to ``status`` when it holds that move's notice."""
        ...

    async def set_notice(self, event_id: str, status: Status, fields: Mapping[str, Any]) -> None:
        """``$set`` delivery bookkeeping (``log_position``, ``notified_at``) on that claim."""
        ...

    async def pending_notices(self, before: datetime, limit: int = 100) -> list[PendingNotice]:
        """Notices in flight whose marker was last touched before ``before`` (repair only)."""
        ...

    async def pending_notice(self, notice_id: str) -> PendingNotice | None:
        """The marker of a notice in flight, by ``_id``."""
        ...

    async def update_pending(self, notice_id: str, fields: Mapping[str, Any]) -> None: ...

    async def drop_pending(self, notice_id: str) -> None:
        """The notice is published and its webhook done: forget its marker."""
        ...


class PredictionStore(EventStore, ResultStore, NoticeStore, Protocol):
    """All three: what the MongoDB adapter implements, and what a service needing several takes."""


class VersionStore(Protocol):
    """What re-runs and frames retention add to the store (the same MongoDB collections):
    claims that hold who took them, and the scan for frames to delete. Errors:
    ``DependencyUnavailable``."""

    async def claim_holding(
        self, event_id: str, name: str, fields: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Take the one-time claim ``name`` holding ``fields``, unless another caller took it
        first; returns the fields of whoever holds it (ours if we won)."""
        ...

    async def frames_kept(
        self, before: datetime, *, after_id: str | None = None, limit: int = 100
    ) -> list[Prediction]:
        """Ended (``ready`` or ``failed``) events of their own frames (not versions), last
        written before ``before``, whose frames are not deleted yet; by ``_id`` after
        ``after_id``. A scan: for the frames sweep only."""
        ...
