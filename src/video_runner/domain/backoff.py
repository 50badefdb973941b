"""How long to wait before the next try of something that failed for a passing reason."""

from __future__ import annotations

import random

#: 2**32 times any sensible initial delay is beyond any maximum: the exponent stops growing here,
#: so a retry loop that runs for days never overflows a float.
_MAX_EXPONENT = 32


def backoff_delay(attempt: int, initial: float, maximum: float) -> float:
    """Exponential backoff with full jitter (so replicas do not retry in step), capped."""
    ceiling: float = min(maximum, initial * (2 ** min(max(attempt, 0), _MAX_EXPONENT)))
    return random.uniform(ceiling / 2, ceiling)
