"""What services report while they work, behind a small interface (Prometheus in production)."""

from __future__ import annotations

from typing import Protocol


class Telemetry(Protocol):
    """Counters and timings the services emit; the adapter decides how they are exposed."""

    def count(self, name: str, value: float = 1.0, **labels: str) -> None: ...

    def observe(self, name: str, seconds: float, **labels: str) -> None: ...

    def gauge(self, name: str, value: float, **labels: str) -> None: ...


class NoTelemetry:
    """Discards everything: for unit tests and one-shot commands."""

    def count(self, name: str, value: float = 1.0, **labels: str) -> None:
        pass

    def observe(self, name: str, seconds: float, **labels: str) -> None:
        pass

    def gauge(self, name: str, value: float, **labels: str) -> None:
        pass
