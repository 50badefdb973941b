"""Reading what the runner wrote: tasks, frames, documents, metrics."""

from __future__ import annotations

import json
from typing import Any

from prometheus_client import CollectorRegistry


def task_values(records: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(record.value) for record in records]


def frame_ids_of(records: list[Any], event_id: str) -> list[int]:
    return sorted(v["frame_id"] for v in task_values(records) if v["event_id"] == event_id)


def metric(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(f"video_runner_{name}", labels or None)
    return 0.0 if value is None else value


def header(record: Any, name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return bytes(value).decode()
    return None
