"""What the store keeps of a completion notice in flight (docs/decisions/0008), typed.

A terminal move's claim holds its notice (``NoticeClaim``); a marker in ``runner_notices``
(``PendingNotice``) stays until the notice is published and its webhook is done, so the sweep
finds what a crash left behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from video_runner.domain.status import Status


@dataclass(frozen=True, slots=True)
class LogPosition:
    """Where a notice was about to be published: the partition and its end offset before."""

    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class NoticeClaim:
    """The claim of a terminal move, with the notice it holds and its delivery bookkeeping."""

    event_id: str
    notice_id: str
    #: The notice as published (JSON-ready).
    notice: dict[str, Any]
    callback_url: str | None
    #: Set just before the notice is published: where to look for it after a crash.
    log_position: LogPosition | None
    #: Set once the notice is on the topic.
    notified_at: datetime | None


@dataclass(frozen=True, slots=True)
class PendingNotice:
    """A notice in flight: not yet published, or its webhook not yet done."""

    notice_id: str
    event_id: str
    status: Status
    #: The sweep's attempts at finishing it (each claimed once, by one sweeper).
    attempts: int
    #: Webhook POSTs made so far (a resumed delivery counts on from here).
    webhook_attempts: int
    published: bool
    #: Last touched: a marker untouched for the grace period is the sweep's.
    at: datetime
