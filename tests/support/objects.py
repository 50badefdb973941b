"""Reading what the runner wrote: tasks, frames, documents, metrics."""

from __future__ import annotations

import json
from typing import Any

import boto3
from botocore.config import Config
from prometheus_client import CollectorRegistry

from video_runner.settings import Settings


def s3_client(settings: Settings) -> Any:
    """A plain boto3 client of the S3 server ``settings`` name, for a test to look behind the
    adapter (listing a bucket) or to hand ``S3ObjectStore`` a client it wraps."""
    secret = settings.s3_secret_access_key
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        aws_access_key_id=settings.s3_access_key_id,
        aws_secret_access_key=None if secret is None else secret.get_secret_value(),
        region_name=settings.s3_region,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


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
