"""Dead-letter queues: a permanent failure is copied to ``<topic>.dlq``, always small enough to fit.

The copy keeps the original key and value with the reason in headers. A value too large to fit
under ``max_bytes`` (``DLQ_MAX_BYTES``, 900 KB: below Kafka's default limit of 1 MB, which the
copy's headers would otherwise push an original of nearly 1 MB over) is truncated; the headers
then still say where the original lives (topic, partition, offset), how long it was and its
sha256, so it can be fetched and checked while the topic retains it. A copy that does not fit
would be refused by the broker forever and stall its partition: this is why it must always fit.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from video_runner.errors import PermanentError
from video_runner.ports import Message, RawPublisher

log = logging.getLogger(__name__)

#: Default of ``DLQ_MAX_BYTES``.
DEFAULT_DLQ_MAX_BYTES = 900_000
#: Room for Kafka's own framing of the record and its batch (about 100 bytes), with margin.
RECORD_OVERHEAD_BYTES = 512
#: A key is an event id in our topics; a longer one is poison, cut like the value.
MAX_KEY_BYTES = 1024
_MAX_REASON_BYTES = 1000


def dead_letter_copy(
    message: Message,
    error: PermanentError,
    *,
    max_bytes: int = DEFAULT_DLQ_MAX_BYTES,
    event_id: str | None = None,
) -> tuple[bytes | None, bytes | None, dict[str, str]]:
    """The key, value and headers of the dead-letter copy of ``message``, within ``max_bytes``.

    ``max_bytes`` bounds key + value + header names and values + ``RECORD_OVERHEAD_BYTES``.
    """
    value = message.value
    key = message.key if message.key is None else message.key[:MAX_KEY_BYTES]
    headers = {
        "error_code": str(error.code),
        "error_message": _cut_text(str(error), _MAX_REASON_BYTES),
        "original_topic": message.topic,
        "original_partition": str(message.partition),
        "original_offset": str(message.offset),
        "original_size": "0" if value is None else str(len(value)),
        "original_sha256": hashlib.sha256(value or b"").hexdigest(),
        "truncated": "false",
    }
    known = getattr(error, "event_id", None) or event_id
    if isinstance(known, str):
        headers["event_id"] = known
    budget = max_bytes - RECORD_OVERHEAD_BYTES - len(key or b"") - _headers_size(headers)
    if value is not None and len(value) > budget:
        headers["truncated"] = "true"  # a byte shorter than "false": the budget still holds
        value = value[: max(budget, 0)]
    return key, value, headers


async def dead_letter(
    publisher: RawPublisher,
    message: Message,
    error: PermanentError,
    dlq_suffix: str,
    *,
    max_bytes: int = DEFAULT_DLQ_MAX_BYTES,
    event_id: str | None = None,
) -> None:
    """Publish the copy (see :func:`dead_letter_copy`); returns once acknowledged.

    ``event_id``: the event the caller knows the message is about, for a failure found after
    parsing (a missing object, an invalid video), when the error itself does not carry it.
    """
    key, value, headers = dead_letter_copy(message, error, max_bytes=max_bytes, event_id=event_id)
    await publisher.publish_raw(f"{message.topic}{dlq_suffix}", key, value, headers)
    log.warning(
        "message dead-lettered",
        extra={
            "topic": message.topic,
            "partition": message.partition,
            "offset": message.offset,
            "error_code": str(error.code),
            "reason": str(error)[:300],
            "truncated": headers["truncated"] == "true",
        },
    )


@dataclass(frozen=True, slots=True)
class DeadLetters:
    """Where one service dead-letters, and how large a copy may be."""

    publisher: RawPublisher
    dlq_suffix: str
    max_bytes: int = DEFAULT_DLQ_MAX_BYTES

    async def send(
        self, message: Message, error: PermanentError, *, event_id: str | None = None
    ) -> None:
        await dead_letter(
            self.publisher,
            message,
            error,
            self.dlq_suffix,
            max_bytes=self.max_bytes,
            event_id=event_id,
        )


def _headers_size(headers: dict[str, str]) -> int:
    return sum(len(name.encode()) + len(text.encode()) for name, text in headers.items())


def _cut_text(text: str, max_bytes: int) -> str:
    """At most ``max_bytes`` of UTF-8, never splitting a character."""
    return text.encode()[:max_bytes].decode(errors="ignore")
