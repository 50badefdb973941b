"""The life of a prediction document: a small state machine.

``processing`` -> ``predictable`` -> ``ready``; ``processing`` -> ``failed``. A document in a
terminal state never moves again, so redelivered events and duplicate results change nothing.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    PROCESSING = "processing"
    PREDICTABLE = "predictable"
    READY = "ready"
    FAILED = "failed"


_NEXT: dict[Status, frozenset[Status]] = {
    Status.PROCESSING: frozenset({Status.PREDICTABLE, Status.FAILED}),
    Status.PREDICTABLE: frozenset({Status.READY}),
    Status.READY: frozenset(),
    Status.FAILED: frozenset(),
}


def can_move(current: Status, target: Status) -> bool:
    """Whether ``current`` may move to ``target``."""
    return target in _NEXT[current]


def sources_of(target: Status) -> list[Status]:
    """The states from which ``target`` may be reached: the condition of a conditional update."""
    return [state for state, nexts in _NEXT.items() if target in nexts]


def is_finished(status: Status) -> bool:
    """Work on the video path is over: an event in this state is a duplicate."""
    return status in {Status.PREDICTABLE, Status.READY, Status.FAILED}


def claim_name(target: Status) -> str:
    """The one-time claim a move to ``target`` takes: ``finish`` ends processing either way."""
    return "ready" if target is Status.READY else "finish"
