"""Prometheus telemetry: every metric the services emit, declared once, exposed from the start.

``METRICS`` is the one list of metrics (name, kind, help, label names); docs/operations.md's
metrics table is checked against it by a test. Exposed names are ``video_runner_<name>``
(counters end in ``_total``, timings are histograms in seconds). Each process has its own
registry, and every declared family is in it from construction: a metric without labels shows
0 before any work, a labelled one shows its HELP and TYPE lines, so dashboards and alerts see
every family before the first event.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from enum import StrEnum

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase

PREFIX = "video_runner"
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)


class Kind(StrEnum):
    COUNTER = "counter"
    HISTOGRAM = "histogram"
    GAUGE = "gauge"


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One declared metric: what the services call it, its kind, help text and label names."""

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()

    @property
    def exposed_name(self) -> str:
        """The family name a scrape shows (counters carry the ``_total`` suffix)."""
        suffix = "_total" if self.kind is Kind.COUNTER else ""
        return f"{PREFIX}_{self.name}{suffix}"


_C, _H, _G = Kind.COUNTER, Kind.HISTOGRAM, Kind.GAUGE

METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("events_received", _C, "outbox_events messages received"),
    MetricSpec("events_duplicate", _C, "events ignored because their work was already done"),
    MetricSpec("events_extracted", _C, "events whose frame tasks were all published"),
    MetricSpec("segments_published", _C, "segments long videos were cut into, on video_segments"),
    MetricSpec("segments_done", _C, "segments whose frame tasks this runner published"),
    MetricSpec("segments_duplicate", _C, "segment messages ignored: done, or their event over"),
    MetricSpec("events_predictable", _C, "events that reached predictable"),
    MetricSpec("events_ready", _C, "events whose final JSON was written to S3"),
    MetricSpec("events_failed", _C, "events that failed, by error code", ("error_code",)),
    MetricSpec("frames_extracted", _C, "frames decoded, preprocessed and encoded"),
    MetricSpec("frames_resumed", _C, "frames a redone video skipped: recorded by an earlier run"),
    MetricSpec("frames_published", _C, "frame tasks acknowledged by Kafka"),
    MetricSpec("results_received", _C, "inference results received"),
    MetricSpec("results_duplicate", _C, "inference results ignored as duplicates"),
    MetricSpec("results_failed", _C, "inference results carrying a detector error"),
    MetricSpec(
        "results_unknown_event", _C, "inference results for events the runner does not know"
    ),
    MetricSpec("results_late", _C, "inference results for events no longer processing"),
    MetricSpec("results_unexpected_frame", _C, "inference results for frames never sampled"),
    MetricSpec("results_rejected", _C, "inference results dead-lettered", ("error_code",)),
    MetricSpec("objects_rejected", _C, "detected objects dropped from otherwise valid results"),
    MetricSpec("tasks_republished", _C, "frame tasks re-published by the reaper"),
    MetricSpec("tasks_rejected", _C, "inference tasks dead-lettered", ("error_code",)),
    MetricSpec("frames_inferred", _C, "frames run through the detector", ("status",)),
    MetricSpec(
        "notices_published", _C, "completion notices published by their move's winner", ("status",)
    ),
    MetricSpec("notices_republished", _C, "completion notices published by the sweep"),
    MetricSpec(
        "notices_found_published",
        _C,
        "pending completion notices the sweep found already on the topic (only marked)",
    ),
    MetricSpec("webhook_attempts", _C, "webhook POSTs, by outcome", ("outcome",)),
    MetricSpec("documents_purged", _C, "frame documents deleted after their event ended"),
    MetricSpec(
        "reinfer_requests",
        _C,
        "re-run requests, by outcome (started, duplicate, rejected_<code>)",
        ("outcome",),
    ),
    MetricSpec("frames_deleted", _C, "frame JPEGs deleted by the frames retention"),
    MetricSpec("stage_seconds", _H, "duration of a pipeline stage", ("stage",)),
    MetricSpec("videos_in_progress", _G, "videos being extracted now"),
    MetricSpec("segments_in_progress", _G, "segments of long videos being extracted now"),
    MetricSpec("results_in_progress", _G, "inference results being stored now"),
    MetricSpec("decode_fps", _G, "decode speed of the last video, frames per second"),
    MetricSpec(
        "consumer_lag", _G, "messages not yet committed, per partition", ("topic", "partition")
    ),
    MetricSpec(
        "consumer_retries",
        _G,
        "retriable failures backed off since start (dependency down, full disk), per topic",
        ("topic",),
    ),
)

_DECLARED = {spec.name: spec for spec in METRICS}
_KINDS: dict[Kind, type[MetricWrapperBase]] = {
    Kind.COUNTER: Counter,
    Kind.HISTOGRAM: Histogram,
    Kind.GAUGE: Gauge,
}


class UndeclaredMetric(UserWarning):
    """A service emitted a metric that ``METRICS`` does not declare (name, kind or labels).

    A warning, not an error: a typo must not fail the work it was counting in production (the
    value is dropped, the warning printed), while the test suite turns warnings into errors.
    """


class PrometheusTelemetry:
    """Implements ``ports.Telemetry``: every declared family exists from the start."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._metrics: dict[str, MetricWrapperBase] = {}
        for spec in METRICS:
            options: dict[str, object] = {"registry": self.registry}
            if spec.kind is Kind.HISTOGRAM:
                options["buckets"] = _BUCKETS
            kind = _KINDS[spec.kind]
            metric = kind(f"{PREFIX}_{spec.name}", spec.help, spec.labels, **options)  # type: ignore[arg-type]
            self._metrics[spec.name] = metric

    def _series(self, kind: Kind, name: str, labels: dict[str, str]) -> MetricWrapperBase | None:
        spec = _DECLARED.get(name)
        if spec is None or spec.kind is not kind or set(labels) != set(spec.labels):
            declared = "not declared" if spec is None else f"declared as {spec}"
            message = f"{kind} {name!r} with labels {sorted(labels)}: {declared} in METRICS"
            # stacklevel 3: the warning names the service line that emitted the metric.
            warnings.warn(message, UndeclaredMetric, stacklevel=3)
            return None
        metric = self._metrics[name]
        if not labels:
            return metric
        return metric.labels(**labels)

    def count(self, name: str, value: float = 1.0, **labels: str) -> None:
        series = self._series(Kind.COUNTER, name, labels)
        if series is not None:
            series.inc(value)  # type: ignore[attr-defined]

    def observe(self, name: str, seconds: float, **labels: str) -> None:
        series = self._series(Kind.HISTOGRAM, name, labels)
        if series is not None:
            series.observe(seconds)  # type: ignore[attr-defined]

    def gauge(self, name: str, value: float, **labels: str) -> None:
        series = self._series(Kind.GAUGE, name, labels)
        if series is not None:
            series.set(value)  # type: ignore[attr-defined]

    def render(self) -> bytes:
        return generate_latest(self.registry)
