"""Completion notices on ``prediction_events`` and webhooks: exactly one notice per terminal move.

The notice of a terminal move (``ready``, ``failed``) is written in the move's claim, with a
pending marker in ``runner_notices`` written just before (``PredictionStore.transition``). The
caller that won the move then calls ``announce``: record the partition's end offset in the claim,
publish the notice to that partition, mark the claim ``notified_at``. A crash anywhere leaves the
marker behind; ``sweep`` (the outbox-S3 worker's, every ``OUTBOX_SWEEP_INTERVAL_S``) finishes
markers older than ``COMPLETION_NOTICE_GRACE_S``: one sweeper per marker and attempt (a unique
claim), and before publishing again it reads the partition from the recorded offset: a notice
found there was acknowledged before the crash, and is only marked. Webhooks run as background
tasks, a bounded number at a time, and record their state on the event document
(docs/decisions/0008-completion-notices.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from video_runner.domain.notice_records import NoticeClaim, PendingNotice
from video_runner.domain.status import Status
from video_runner.errors import RetriableError
from video_runner.ports import NoticeLog, PredictionStore, Telemetry, WebhookSender
from video_runner.services.webhooks import WebhookConfig, WebhookDeliveries

log = logging.getLogger(__name__)

TERMINAL = frozenset({Status.READY, Status.FAILED})
_PAGE = 100


@dataclass(frozen=True, slots=True)
class NoticeConfig:
    topic: str
    #: A marker untouched this long is the sweep's: its owner died or gave up.
    grace_s: float
    webhooks: WebhookConfig


def _now() -> datetime:
    return datetime.now(UTC)


class Notices:
    """Publishes completion notices and delivers webhooks; ``sweep`` repairs what crashes left."""

    def __init__(
        self,
        config: NoticeConfig,
        *,
        store: PredictionStore,
        notice_log: NoticeLog,
        webhooks: WebhookSender | None,
        telemetry: Telemetry,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._now = clock
        self._config = config
        self._store = store
        self._log = notice_log
        self._telemetry = telemetry
        self._deliveries = (
            None
            if webhooks is None
            else WebhookDeliveries(
                config.webhooks, store=store, sender=webhooks, telemetry=telemetry, clock=clock
            )
        )

    # -- the winner of a move -----------------------------------------------------------------

    async def announce(self, event_id: str, status: Status) -> None:
        """Publish the notice of the move to ``status`` this caller just won; start its webhook.

        Never raises for a dependency that is down: the notice stays pending and the sweep
        publishes it after the grace period.
        """
        if status not in TERMINAL:
            return
        notice_id = f"{event_id}/{status.value}"
        try:
            claim = await self._store.read_notice(event_id, status)
            if claim is None:
                return
            if claim.notified_at is None:
                await self._publish(event_id, status, claim.notice)
                self._telemetry.count("notices_published", status=status.value)
            await self._published(notice_id, claim)
        except RetriableError as exc:
            log.warning(
                "completion notice left to the sweep",
                extra={"event_id": event_id, "notice_id": notice_id, "error": str(exc)},
            )

    async def _publish(self, event_id: str, status: Status, notice: Mapping[str, Any]) -> None:
        """Offset first, then the message, then the mark: a crash leaves where to look."""
        topic = self._config.topic
        partition = await self._log.partition_for(topic, event_id)
        start = await self._log.end_offset(topic, partition)
        await self._store.set_notice(
            event_id, status, {"log_position": {"partition": partition, "offset": start}}
        )
        await self._log.publish_at(topic, partition, event_id, notice)
        await self._store.set_notice(event_id, status, {"notified_at": self._now()})

    async def _published(self, notice_id: str, claim: NoticeClaim) -> None:
        """The notice is on the topic: start its webhook, or forget its marker."""
        url = claim.callback_url
        if url is None or self._deliveries is None:
            await self._store.drop_pending(notice_id)
            return
        await self._store.update_pending(notice_id, {"published": True, "at": self._now()})
        self._deliveries.start(notice_id, claim.event_id, url, claim.notice)

    async def drain(self) -> None:
        """Wait for every webhook in flight (tests, and a graceful stop that may wait)."""
        if self._deliveries is not None:
            await self._deliveries.drain()

    async def close(self) -> None:
        """Stop webhooks in flight (their markers stay, and the sweep resumes them); disconnect."""
        if self._deliveries is not None:
            await self._deliveries.close()
        await self._log.close()

    # -- the sweep ----------------------------------------------------------------------------

    async def sweep(self, now: datetime | None = None) -> int:
        """Finish notices whose owner stopped: publish (or find) them, resume their webhooks."""
        now = now or self._now()
        before = now - timedelta(seconds=self._config.grace_s)
        done = 0
        for marker in await self._store.pending_notices(before, limit=_PAGE):
            try:
                if await self._repair(marker):
                    done += 1
            except RetriableError as exc:
                log.warning(
                    "notice repair failed, next sweep retries",
                    extra={"notice_id": marker.notice_id, "error": str(exc)},
                )
        return done

    async def _repair(self, marker: PendingNotice) -> bool:
        notice_id = marker.notice_id
        if self._deliveries is not None and self._deliveries.delivering(notice_id):
            return False  # this very process is on it
        event_id, status, attempt = marker.event_id, marker.status, marker.attempts
        # The next attempt's number goes on the marker before this attempt is claimed: a sweeper
        # dying between the two would otherwise leave a claimed number on the marker for good.
        await self._store.update_pending(notice_id, {"attempts": attempt + 1, "at": self._now()})
        # One sweeper per marker and attempt: several outbox-S3 replicas sweep the same markers.
        if not await self._store.claim(event_id, f"notice-{status.value}-{attempt}"):
            return False
        claim = await self._store.read_notice(event_id, status)
        if claim is None:
            # No move holds this notice: the move was lost to another one (failed vs
            # predictable) or its caller died before claiming. Nothing was announced.
            await self._store.drop_pending(notice_id)
            return True
        if claim.notified_at is None:
            if await self._already_published(event_id, claim):
                await self._store.set_notice(event_id, status, {"notified_at": self._now()})
                self._telemetry.count("notices_found_published")
            else:
                await self._publish(event_id, status, claim.notice)
                self._telemetry.count("notices_republished")
                log.warning(
                    "completion notice re-published by the sweep",
                    extra={"event_id": event_id, "notice_id": notice_id},
                )
        prediction = await self._store.get(event_id)
        if prediction is not None and prediction.webhook_over:
            await self._store.drop_pending(notice_id)  # died after its last word, before this
            return True
        await self._published(notice_id, claim)
        return True

    async def _already_published(self, event_id: str, claim: NoticeClaim) -> bool:
        position = claim.log_position
        if position is None:
            return False  # died before it recorded the offset, so before it published
        return await self._log.contains(
            self._config.topic, position.partition, position.offset, event_id, claim.notice_id
        )


async def move_and_announce(
    store: PredictionStore,
    notices: Notices | None,
    event_id: str,
    target: Status,
    fields: Mapping[str, Any],
    *,
    source: Status | None = None,
) -> bool:
    """Make a move; the one caller that wins it publishes its completion notice (if terminal)."""
    moved = await store.transition(event_id, target, fields, source=source)
    if moved and notices is not None:
        await notices.announce(event_id, target)
    return moved
