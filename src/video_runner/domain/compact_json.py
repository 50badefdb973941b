"""The one JSON encoding of what the project sends: compact UTF-8, so a notice's Kafka message
and its webhook body are the same bytes (the signature covers exactly those)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def compact_json(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
