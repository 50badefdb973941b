"""Webhook deliveries of completion notices: signed POSTs, retried with backoff, resumable.

Each delivery runs as a background task, a bounded number at a time, and records its state on the
event document (``webhook``) and its attempts on the notice's pending marker, so the sweep of
any replica resumes one that a crash or a stop interrupted (docs/decisions/0008).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from video_runner.domain.compact_json import compact_json
from video_runner.domain.retry_policy import Decision, RetryPolicy
from video_runner.domain.signature import SIGNATURE_HEADER, sign
from video_runner.errors import RetriableError
from video_runner.ports import PredictionStore, Telemetry, WebhookSender

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    secret: bytes | None
    max_attempts: int
    retry_initial_s: float
    retry_max_s: float
    concurrency: int


class WebhookDeliveries:
    """Delivers notices to their callback URLs; never two deliveries of one notice at once."""

    def __init__(
        self,
        config: WebhookConfig,
        *,
        store: PredictionStore,
        sender: WebhookSender,
        telemetry: Telemetry,
        clock: Callable[[], datetime],
    ) -> None:
        self._config = config
        self._store = store
        self._webhooks = sender
        self._telemetry = telemetry
        self._now = clock
        self._slots = asyncio.Semaphore(config.concurrency)
        self._retry = RetryPolicy(
            initial_s=config.retry_initial_s,
            max_s=config.retry_max_s,
            max_attempts=config.max_attempts,
        )
        self._tasks: set[asyncio.Task[None]] = set()
        #: Webhooks this process is delivering now, by notice id (never two for one notice).
        self._delivering: set[str] = set()

    def delivering(self, notice_id: str) -> bool:
        return notice_id in self._delivering

    def start(self, notice_id: str, event_id: str, url: str, notice: Mapping[str, Any]) -> None:
        if notice_id in self._delivering:
            return
        self._delivering.add(notice_id)
        self._spawn(self._webhook(notice_id, event_id, url, notice), notice_id)

    def _spawn(self, job: Coroutine[Any, Any, None], notice_id: str) -> None:
        task = asyncio.create_task(job, name=f"webhook {notice_id}")
        self._tasks.add(task)

        def _done(finished: asyncio.Task[None]) -> None:
            self._tasks.discard(finished)
            self._delivering.discard(notice_id)

        task.add_done_callback(_done)

    async def _webhook(
        self, notice_id: str, event_id: str, url: str, notice: Mapping[str, Any]
    ) -> None:
        try:
            async with self._slots:
                await self._deliver(notice_id, event_id, url, notice)
        except RetriableError as exc:
            # The store went away: the marker stays, the sweep resumes the delivery.
            log.warning(
                "webhook left to the sweep", extra={"event_id": event_id, "error": str(exc)}
            )
        except Exception:
            log.exception("webhook delivery crashed", extra={"event_id": event_id})

    async def _deliver(
        self, notice_id: str, event_id: str, url: str, notice: Mapping[str, Any]
    ) -> None:
        body = compact_json(notice)  # the bytes the Kafka message holds too
        headers = {"Content-Type": "application/json", "X-Notice-Id": notice_id}
        if self._config.secret is not None:
            headers[SIGNATURE_HEADER] = sign(self._config.secret, body)
        # Resumed after a crash: count on from what the document (or the marker) recorded.
        pending = await self._store.pending_notice(notice_id)
        prediction = await self._store.get(event_id)
        attempts = max(
            0 if pending is None else pending.webhook_attempts,
            0 if prediction is None else prediction.webhook_attempts,
        )
        while True:
            status: int | None = None
            error: str | None = None
            try:
                status = await self._webhooks.post(url, body, headers)
            except RetriableError as exc:
                error = str(exc)[:300]
            attempts += 1
            decision = self._retry.decide_http(status, attempts=attempts)
            delivered = decision is None
            final = decision is not Decision.RETRY
            refused = decision is Decision.DEAD_LETTER
            state = "delivered" if delivered else ("failed" if final else "pending")
            if error is None and not delivered:
                error = f"HTTP {status}"
            outcome = "delivered" if delivered else ("refused" if refused else "retry")
            self._telemetry.count("webhook_attempts", outcome=outcome)
            await self._store.annotate(
                event_id,
                {
                    "webhook": {
                        "state": state,
                        "attempts": attempts,
                        "last_status": status,
                        "last_error": None if delivered else error,
                    }
                },
            )
            if final:
                await self._store.drop_pending(notice_id)
                log.log(
                    logging.INFO if delivered else logging.WARNING,
                    "webhook delivery over",
                    extra={
                        "event_id": event_id,
                        "state": state,
                        "attempts": attempts,
                        "status": status,
                    },
                )
                return
            # Touch the marker: a sweeper leaves a delivery that is still trying alone.
            await self._store.update_pending(
                notice_id, {"webhook_attempts": attempts, "at": self._now()}
            )
            await asyncio.sleep(self._retry.delay(attempts))

    async def drain(self) -> None:
        """Wait for every webhook in flight (tests, and a graceful stop that may wait)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Stop webhooks in flight: their markers stay, and the sweep resumes them."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
