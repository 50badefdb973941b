"""What a consumer loop exposes for health and metrics (readiness, the lag and retry gauges)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from aiokafka.structs import TopicPartition


@dataclass
class LoopStats:
    """Updated by the dispatch core and its retrying handler, read by readiness and metrics."""

    last_poll: float = field(default_factory=time.monotonic)
    in_flight: int = 0
    committed: int = 0
    #: Backoffs of work waiting out a failure since start: climbing means work waits, not lost.
    retries: int = 0
    assigned: set[TopicPartition] = field(default_factory=set)
    #: The dependencies work of this loop is waiting out now, with how many records wait on each.
    waiting_for: dict[str, int] = field(default_factory=dict)
