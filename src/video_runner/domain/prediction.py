"""A prediction: one event's life in the runner, typed, with the rules every service applies to it.

The store keeps it as a document (docs/contracts.md, "Documents") and maps it to this type in one
place (``adapters/mongo/documents.py``); services read attributes and ask it questions instead of
looking keys up. ``document`` is the stored document as read, for the views that show it whole
(status, dashboard) and for the final JSON's header, which repeats its fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from video_runner.domain.results import (
    Completion,
    ResultCounts,
    is_expected_under,
    judge_completion,
)
from video_runner.domain.status import Status, is_finished
from video_runner.domain.task_pages import task_page_count

#: Webhook states after which nothing is retried (``webhook.state`` on the document).
WEBHOOK_OVER = frozenset({"delivered", "failed"})


@dataclass(frozen=True, slots=True)
class Prediction:
    """An event as the runner tracks it, from acceptance to ``ready`` or ``failed``."""

    event_id: str
    status: Status
    #: Sampled frames, set once every frame task is published (None before).
    total_frames: int | None = None
    frames_published: int = 0
    #: Over how many results partitions the event's counters are spread (at least one).
    results_partitions: int = 1
    source_bucket: str | None = None
    source_key: str | None = None
    #: The sampling the video path applied, as stored (``every_n``, or ``fps``, range bounds).
    sampling: Mapping[str, Any] | None = None
    #: The event's own options, as given (docs/contracts.md, ``payload.options``).
    options: Mapping[str, Any] = field(default_factory=dict)
    error: Mapping[str, Any] | None = None
    output_s3: str | None = None
    #: Results stored and detector errors among them: the summary of the move out of
    #: ``processing``, or live counts once ``with_progress`` has been applied.
    results_received: int = 0
    failed_frames: int = 0
    webhook: Mapping[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    extracted_at: datetime | None = None
    purged_at: datetime | None = None
    document: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def extraction_done(self) -> bool:
        """Every frame task is published: the video path is over, results decide the rest."""
        return self.total_frames is not None

    @property
    def video_path_over(self) -> bool:
        """A redelivered event finds nothing to do: finished, or only its commit was lost (its
        tasks, or its video's segments, are all published)."""
        return is_finished(self.status) or self.extraction_done or self.segment_count > 0

    @property
    def accepts_results(self) -> bool:
        return self.status is Status.PROCESSING

    @property
    def waits_for_results(self) -> bool:
        """Completion is for results to decide (before the total, the video path owns it)."""
        return self.accepts_results and self.extraction_done

    def expects_frame(self, frame_id: int) -> bool:
        """Whether this event's sampling can have selected ``frame_id``."""
        return is_expected_under(self.sampling, frame_id, self.total_frames)

    def completion(self, counts: ResultCounts, max_failed_ratio: float) -> Completion:
        """What ``counts`` decide: complete or not, and failed for too many detector errors."""
        return judge_completion(self.total_frames, counts.stored, counts.failed, max_failed_ratio)

    def all_stored(self, counts: ResultCounts) -> bool:
        return self.total_frames is not None and counts.stored >= self.total_frames

    def last_activity(self, counts: ResultCounts) -> datetime:
        """The latest of its last counted result, its extraction and its last write."""
        stamps = [counts.last_at, self.extracted_at, self.updated_at]
        return max(
            (s.astimezone(UTC) for s in stamps if s is not None),
            default=datetime.min.replace(tzinfo=UTC),
        )

    @property
    def published_frames(self) -> int:
        """Frame tasks known to be published (a failed event may have stopped half-way)."""
        return self.total_frames or self.frames_published or 0

    @property
    def segment_count(self) -> int:
        """How many segments its video was cut into (0: decoded whole)."""
        planned = self.document.get("segments")
        return int(planned.get("count", 0)) if isinstance(planned, Mapping) else 0

    @property
    def task_pages(self) -> int:
        """How many task pages its published frames fill."""
        return task_page_count(self.published_frames)

    def output_bucket(self, default: str) -> str:
        """The final JSON goes beside the source video."""
        return self.source_bucket or default

    @property
    def callback_url(self) -> str | None:
        url = self.options.get("callback_url")
        return url if isinstance(url, str) and url else None

    @property
    def detector_classes(self) -> tuple[str, ...] | None:
        classes = self.options.get("classes")
        return None if classes is None else tuple(classes)

    @property
    def min_confidence(self) -> float | None:
        value = self.options.get("min_confidence")
        return None if value is None else float(value)

    @property
    def detector(self) -> str | None:
        """The detector kind a re-run asked for (None: the inference workers' own)."""
        kind = self.document.get("detector")
        return kind if isinstance(kind, str) and kind else None

    @property
    def webhook_attempts(self) -> int:
        return int(self.webhook.get("attempts") or 0)

    @property
    def webhook_over(self) -> bool:
        return self.webhook.get("state") in WEBHOOK_OVER

    def with_progress(self, counts: ResultCounts) -> Prediction:
        """The event with live result counts (the document gets its summary only at its move)."""
        live = {"results_received": counts.stored, "failed_frames": counts.failed}
        return replace(
            self,
            results_received=counts.stored,
            failed_frames=counts.failed,
            document={**self.document, **live},
        )

    def as_document(self) -> dict[str, Any]:
        """The stored document (with live counts once ``with_progress`` applied them)."""
        return dict(self.document)
