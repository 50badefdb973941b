"""The detectors one inference worker serves: its own (``DETECTOR``), and the kinds a task may
ask for by name (``DETECTORS_SERVED``), each built the first time one is asked for.

A task for a kind the worker does not serve, or one whose model cannot be loaded here, is not
a crash nor a retry: the worker answers that frame with ``error`` ``detector_unavailable``, and
the runner counts it as a failed frame (``MAX_FAILED_FRAME_RATIO`` decides the video).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from video_runner.errors import ConfigurationError, ErrorCode, PermanentError
from video_runner.services.inference import BatchingDetector

log = logging.getLogger(__name__)


class DetectorUnavailable(PermanentError):
    """This worker cannot run the detector a task asks for."""

    code = ErrorCode.DETECTOR_UNAVAILABLE


class DetectorPool:
    """The worker's own detector, and the others it builds on demand (one of each kind)."""

    def __init__(
        self,
        own_kind: str,
        own: BatchingDetector,
        *,
        build: Callable[[str], BatchingDetector],
        served: frozenset[str],
    ) -> None:
        self._own_kind = own_kind.strip().lower()
        self._own = own
        self._build = build
        self._served = served
        self._built: dict[str, BatchingDetector] = {}
        self._refused: dict[str, str] = {}
        self._lock = asyncio.Lock()

    @property
    def own(self) -> BatchingDetector:
        return self._own

    async def pick(self, kind: str | None) -> BatchingDetector:
        """The detector of ``kind`` (None: the worker's own); raises ``DetectorUnavailable``."""
        if kind is None or kind == self._own_kind:
            return self._own
        if kind not in self._served:
            served = ", ".join(sorted({self._own_kind, *self._served}))
            raise DetectorUnavailable(f"this worker serves {served}, not {kind}")
        async with self._lock:
            if kind in self._built:
                return self._built[kind]
            if kind in self._refused:
                raise DetectorUnavailable(self._refused[kind])
            try:
                # Loading a model takes seconds: off the event loop, once per kind.
                built = await asyncio.to_thread(self._build, kind)
            except ConfigurationError as exc:
                self._refused[kind] = f"detector {kind} cannot be loaded here: {exc}"
                log.error(  # noqa: TRY400 - the reason is the message; no traceback helps
                    "detector unavailable", extra={"detector": kind, "reason": str(exc)}
                )
                raise DetectorUnavailable(self._refused[kind]) from exc
            self._built[kind] = built
            log.info("detector loaded on demand", extra={"detector": built.name})
            return built

    async def close(self) -> None:
        """Stop every detector, the worker's own included."""
        for detector in [self._own, *self._built.values()]:
            await detector.close()
