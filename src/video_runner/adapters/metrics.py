"""Prometheus telemetry: the services' counters and timings as scrapeable metrics.

Metric names are ``video_runner_<name>`` (counters end in ``_total``, timings are histograms in
seconds); docs/operations.md lists them. Each process has its own registry.
"""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase

_PREFIX = "video_runner"
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)

_HELP = {
    "events_received": "outbox_events messages received",
    "events_duplicate": "events ignored because their work was already done",
    "events_extracted": "events whose frame tasks were all published",
    "events_predictable": "events that reached predictable",
    "events_ready": "events whose final JSON was written to S3",
    "events_failed": "events that failed, by error code",
    "frames_extracted": "frames decoded, preprocessed and encoded",
    "frames_published": "frame tasks acknowledged by Kafka",
    "results_received": "inference results received",
    "results_duplicate": "inference results ignored as duplicates",
    "results_failed": "inference results carrying a detector error",
    "results_unknown_event": "inference results for events the runner does not know",
    "results_rejected": "inference results dead-lettered",
    "tasks_republished": "frame tasks re-published by the reaper",
    "tasks_rejected": "inference tasks dead-lettered",
    "frames_inferred": "frames run through the detector",
    "stage_seconds": "duration of a pipeline stage",
    "videos_in_progress": "videos being extracted now",
    "decode_fps": "decode speed of the last video, frames per second",
    "consumer_lag": "messages not yet committed, per partition",
}


class PrometheusTelemetry:
    """Implements ``services.telemetry.Telemetry``; metrics are created on first use."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._metrics: dict[str, MetricWrapperBase] = {}
        self._lock = threading.Lock()

    def _metric(
        self, kind: type[MetricWrapperBase], name: str, labels: tuple[str, ...]
    ) -> MetricWrapperBase:
        with self._lock:
            metric = self._metrics.get(name)
            if metric is None:
                documentation = _HELP.get(name, name.replace("_", " "))
                options: dict[str, object] = {"registry": self.registry}
                if kind is Histogram:
                    options["buckets"] = _BUCKETS
                metric = kind(f"{_PREFIX}_{name}", documentation, labels, **options)  # type: ignore[arg-type]
                self._metrics[name] = metric
            return metric

    def count(self, name: str, value: float = 1.0, **labels: str) -> None:
        metric = self._metric(Counter, name, tuple(sorted(labels)))
        (metric.labels(**labels) if labels else metric).inc(value)  # type: ignore[attr-defined]

    def observe(self, name: str, seconds: float, **labels: str) -> None:
        metric = self._metric(Histogram, name, tuple(sorted(labels)))
        (metric.labels(**labels) if labels else metric).observe(seconds)  # type: ignore[attr-defined]

    def gauge(self, name: str, value: float, **labels: str) -> None:
        metric = self._metric(Gauge, name, tuple(sorted(labels)))
        (metric.labels(**labels) if labels else metric).set(value)  # type: ignore[attr-defined]

    def render(self) -> bytes:
        return generate_latest(self.registry)
