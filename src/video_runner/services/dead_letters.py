"""Dead-letter queues: a permanent failure is copied, as it came, to ``<topic>.dlq``."""

from __future__ import annotations

import logging

from video_runner.errors import PermanentError
from video_runner.ports import Message, RawPublisher

log = logging.getLogger(__name__)


async def dead_letter(
    publisher: RawPublisher, message: Message, error: PermanentError, dlq_suffix: str
) -> None:
    """Publish the original key and value with the reason in headers; returns once acknowledged."""
    headers = {
        "error_code": str(error.code),
        "error_message": str(error)[:1000],
        "original_topic": message.topic,
        "original_partition": str(message.partition),
        "original_offset": str(message.offset),
    }
    await publisher.publish_raw(f"{message.topic}{dlq_suffix}", message.key, message.value, headers)
    log.warning(
        "message dead-lettered",
        extra={
            "topic": message.topic,
            "partition": message.partition,
            "offset": message.offset,
            "error_code": str(error.code),
            "reason": str(error)[:300],
        },
    )
