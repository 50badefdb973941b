"""The life of a prediction document: a small state machine.

``processing`` -> ``predictable`` -> ``ready``; ``processing`` -> ``failed``. One more move is
made only by a caller that names its source: ``predictable`` -> ``failed`` when writing the
result is refused for good (a permanent error must end the video, not retry it forever); a late
timeout never fails a predictable event. A document in a terminal state never moves again, so
redelivered events and duplicate results change nothing.
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


#: Moves only a caller naming ``current`` as its source makes (``transition(source=...)``).
_NAMED_ONLY = frozenset({(Status.PREDICTABLE, Status.FAILED)})


def can_move(current: Status, target: Status, *, named: bool = False) -> bool:
    """Whether ``current`` may move to ``target`` (``named``: the caller named ``current``)."""
    return target in _NEXT[current] or (named and (current, target) in _NAMED_ONLY)


def sources_of(target: Status) -> list[Status]:
    """The states from which ``target`` may be reached: the condition of a conditional update."""
    return [state for state, nexts in _NEXT.items() if target in nexts]


def is_finished(status: Status) -> bool:
    """Work on the video path is over: an event in this state is a duplicate."""
    return status in {Status.PREDICTABLE, Status.READY, Status.FAILED}


def claim_name(current: Status) -> str:
    """The one-time claim a move out of ``current`` takes: ``finish`` ends processing either
    way (predictable or failed), ``ready`` ends predictable either way (ready or failed)."""
    return "ready" if current is Status.PREDICTABLE else "finish"


def claim_names(target: Status) -> tuple[str, ...]:
    """The claims that can hold the move to ``target`` (and its notice)."""
    if target is Status.FAILED:
        return ("finish", "ready")
    return ("ready",) if target is Status.READY else ("finish",)
