"""One record, or one batch, run through its handler under the retry policy (decision 0003).

Whatever the handler raises is put through the error tables (``classify_escaped``), then decided
by the retry policy's ``message`` column (``domain/retry_policy.py``): a dependency that is down
or a configuration to fix is waited out with backoff, nothing committed meanwhile; a permanent
error is dead-lettered; an unexpected one is tried ``RETRY_MAX_ATTEMPTS`` times in all, then
dead-lettered as ``internal``. A batch is retried whole (it is idempotent) while its failure is
waited out or retried; once it cannot go through whole, its records are handled one at a time,
so that a bad one is dead-lettered alone. Dead-lettering itself is the ``dead-letter`` column:
every failure of it is waited out, since giving up would lose the only record of a failure.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from video_runner.adapters.error_classes import classify_escaped
from video_runner.adapters.kafka.loop_stats import LoopStats
from video_runner.adapters.kafka.protocols import BatchHandler, Record, RecordHandler
from video_runner.domain.retry_policy import (
    Decision,
    ErrorKind,
    RetryPolicy,
    Tries,
    Work,
    dependency_of,
    kind_of,
)
from video_runner.errors import ErrorCode, PermanentError

log = logging.getLogger(__name__)


class _Waiting:
    """The dependency one piece of work is waiting out now, counted in the loop's stats, so
    that readiness names it."""

    def __init__(self, stats: LoopStats) -> None:
        self._stats = stats
        self._dependency: str | None = None

    def on(self, dependency: str | None) -> None:
        if dependency == self._dependency:
            return
        self.off()
        if dependency is not None:
            waiting = self._stats.waiting_for
            waiting[dependency] = waiting.get(dependency, 0) + 1
            self._dependency = dependency

    def off(self) -> None:
        dependency, self._dependency = self._dependency, None
        if dependency is None:
            return
        waiting = self._stats.waiting_for
        waiting[dependency] -= 1
        if not waiting[dependency]:
            del waiting[dependency]


def _as_permanent(error: BaseException) -> PermanentError:
    if isinstance(error, PermanentError):
        return error
    return PermanentError(
        f"internal error: {type(error).__name__}: {error}", code=ErrorCode.INTERNAL
    )


class RetryingHandler:
    """A consumer's handler under the retry policy: each run returns once its record (or each
    record of its batch) is handled or dead-lettered, never with an exception."""

    def __init__(
        self, handler: RecordHandler, retry: RetryPolicy, stats: LoopStats, *, batches: bool
    ) -> None:
        self._handler = handler
        self._batch_handler: BatchHandler | None = None
        if batches:
            if not hasattr(handler, "handle_batch"):
                raise TypeError(f"{type(handler).__name__} has no handle_batch")
            self._batch_handler = handler  # type: ignore[assignment]
        self._retry = retry
        self._stats = stats

    async def run_record(self, record: Record) -> None:
        tries = self._retry.tries(Work.MESSAGE)
        waiting = _Waiting(self._stats)
        try:
            while True:
                try:
                    await self._handler.handle(record)
                except Exception as exc:  # the policy decides; the loop never crashes
                    error = classify_escaped(exc)
                    decision = tries.failed(error)
                    if decision is Decision.WAIT_OUT:
                        waiting.on(dependency_of(error))
                        await self._wait_out(record, error, tries)
                        continue
                    waiting.off()
                    if kind_of(error) is ErrorKind.UNEXPECTED:
                        log.exception(
                            "unexpected failure",
                            extra={
                                "topic": record.topic,
                                "offset": record.offset,
                                "attempt": tries.retries,
                            },
                        )
                    if decision is Decision.RETRY:
                        await asyncio.sleep(tries.delay())
                        continue
                    await self._dead_letter(record, _as_permanent(error))
                    return
                else:
                    return
        finally:
            waiting.off()

    async def run_batch(self, records: Sequence[Record]) -> None:
        handler = self._batch_handler
        assert handler is not None  # noqa: S101 - batch mode is decided in __init__
        tries = self._retry.tries(Work.MESSAGE)
        waiting = _Waiting(self._stats)
        try:
            while True:
                try:
                    await handler.handle_batch(records)
                except Exception as exc:  # noqa: BLE001 - the policy decides, the loop never crashes
                    error = classify_escaped(exc)
                    decision = tries.failed(error)
                    if decision is Decision.WAIT_OUT:
                        waiting.on(dependency_of(error))
                        await self._wait_out(records[0], error, tries)
                        continue
                    waiting.off()
                    self._log_batch_failure(records, error, tries)
                    if decision is Decision.RETRY:
                        await asyncio.sleep(tries.delay())
                        continue
                    break
                else:
                    return
        finally:
            waiting.off()
        # One record at a time, so a bad one is dead-lettered alone.
        for record in records:
            await self.run_record(record)

    @staticmethod
    def _log_batch_failure(records: Sequence[Record], error: BaseException, tries: Tries) -> None:
        extra = {"topic": records[0].topic, "records": len(records), "attempt": tries.retries}
        if kind_of(error) is ErrorKind.UNEXPECTED:
            log.error("unexpected failure in a batch", exc_info=error, extra=extra)
        else:
            log.warning(
                "permanent failure in a batch, handled one record at a time",
                extra={**extra, "error": str(error)},
            )

    async def _wait_out(self, record: Record, error: BaseException, tries: Tries) -> None:
        delay = tries.delay()
        self._stats.retries += 1
        log.warning(
            "retriable failure, backing off",
            extra={
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "dependency": dependency_of(error),
                "error": str(error),
                "delay_s": round(delay, 2),
            },
        )
        await asyncio.sleep(delay)

    async def _dead_letter(self, record: Record, error: PermanentError) -> None:
        tries = self._retry.tries(Work.DEAD_LETTER)
        waiting = _Waiting(self._stats)
        try:
            while True:
                try:
                    await self._handler.dead_letter(record, error)
                except Exception as exc:  # noqa: BLE001 - nothing lost: waited out until recorded
                    failure = classify_escaped(exc)
                    # Every failure here is waited out (the policy's dead-letter column).
                    tries.failed(failure)
                    waiting.on(dependency_of(failure) or "dead-letter")
                    await self._wait_to_dead_letter(record, failure, tries)
                else:
                    return
        finally:
            waiting.off()

    async def _wait_to_dead_letter(
        self, record: Record, failure: BaseException, tries: Tries
    ) -> None:
        delay = tries.delay()
        self._stats.retries += 1
        extra = {"offset": record.offset, "error": str(failure), "delay_s": round(delay, 2)}
        if kind_of(failure) in {ErrorKind.DEPENDENCY_DOWN, ErrorKind.CONFIGURATION}:
            log.warning("dead-letter failed, backing off", extra=extra)
        else:
            # It will not pass by itself (a bug, a copy refused for good): an operator must look.
            log.error("dead-letter failed, backing off", exc_info=failure, extra=extra)
        await asyncio.sleep(delay)
