"""What services report while they work, behind a small interface (Prometheus in production)."""

from __future__ import annotations

from typing import Protocol


class Telemetry(Protocol):
    """Counters, timings and gauges the services emit; the adapter decides how they are exposed.

    Every name, with its kind and label names, is declared once in ``METRICS``
    (adapters/metrics.py): a test fails when the code emits one that is not declared there.
    """

    def count(self, name: str, value: float = 1.0, **labels: str) -> None: ...

    def observe(self, name: str, seconds: float, **labels: str) -> None: ...

    def gauge(self, name: str, value: float, **labels: str) -> None: ...
