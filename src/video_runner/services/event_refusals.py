"""How the runner fails an event it cannot do: the dead-letter copy first, then the document.

Whatever the refusal (an unreadable message, bad options, a video that is not one), an event
with a usable id ends as a ``failed`` document with its completion notice, so a client waiting
for it learns why instead of waiting forever.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from video_runner.contracts import raw_payload
from video_runner.domain.display_text import without_paths
from video_runner.domain.status import Status
from video_runner.errors import PermanentError
from video_runner.ports import Message, PredictionStore, Telemetry
from video_runner.services.dead_letters import DeadLetters
from video_runner.services.notices import Notices, move_and_announce

log = logging.getLogger(__name__)
#: The most of a refused event's bucket or key kept on its document.
_SHOWN_SOURCE = 1024


class EventRefusals:
    """Fails events for good, each with its dead-letter copy, reason and notice."""

    def __init__(
        self,
        *,
        store: PredictionStore,
        notices: Notices | None,
        dead_letters: DeadLetters,
        telemetry: Telemetry,
        work_dir: Path,
        max_message_bytes: int,
        defaults: Mapping[str, Any],
    ) -> None:
        self._store = store
        self._notices = notices
        self._dead_letters = dead_letters
        self._telemetry = telemetry
        self._work_dir = work_dir
        self._max_message_bytes = max_message_bytes
        #: The runner's own sampling and preprocessing, for a document made from a refusal.
        self._defaults = dict(defaults)

    async def fail(self, message: Message, event_id: str | None, error: PermanentError) -> None:
        # Dead-letter first: once the document says failed, a redelivery is a duplicate and the
        # copy would never be written. A crash between the two repeats the copy, never loses it.
        await self._dead_letters.send(message, error, event_id=event_id)
        reason = without_paths(str(error), [self._work_dir])
        if event_id is not None:
            if await self._store.get(event_id) is None:
                await self._store.begin(event_id, self._refused_fields(message))
            await move_and_announce(
                self._store,
                self._notices,
                event_id,
                Status.FAILED,
                {
                    "error": {"code": str(error.code), "message": reason},
                    "failed_at": datetime.now(UTC),
                },
            )
        self._telemetry.count("events_failed", error_code=str(error.code))
        log.error(
            "event failed",
            extra={"event_id": event_id, "error_code": str(error.code), "reason": str(error)},
        )

    def _refused_fields(self, message: Message) -> dict[str, Any]:
        """The document of an event refused before it was read: its source as it was given
        (values only, cut short), the runner's defaults for the rest."""
        payload = raw_payload(message.value, max_bytes=self._max_message_bytes)
        return {
            "source": {
                name: str(payload[name])[:_SHOWN_SOURCE] if name in payload else None
                for name in ("bucket", "object")
            }
            | {"media_type": "video"},
            "sampling": self._defaults["sampling"],
            "options": {},
            "preprocessing": self._defaults["preprocessing"],
            "error": None,
        }
