"""``outbox_events`` carries two kinds of message: a video to process (the video path) and a
re-run of a ready event's frames (``"type": "reinfer"``, the re-run path). One consumer reads
the topic; this hands each message to the path it belongs to, dead letters included."""

from __future__ import annotations

from typing import Protocol

from video_runner.contracts.reinfer_event import is_reinfer
from video_runner.errors import PermanentError
from video_runner.ports import Message


class Path(Protocol):
    async def handle(self, message: Message) -> None: ...

    async def dead_letter(self, message: Message, error: PermanentError) -> None: ...


class OutboxEvents:
    """Routes each ``outbox_events`` message by its ``type`` (none: a video)."""

    def __init__(self, videos: Path, reruns: Path, *, max_message_bytes: int) -> None:
        self._videos = videos
        self._reruns = reruns
        self._max_bytes = max_message_bytes

    def _path_of(self, message: Message) -> Path:
        return (
            self._reruns if is_reinfer(message.value, max_bytes=self._max_bytes) else self._videos
        )

    async def handle(self, message: Message) -> None:
        await self._path_of(message).handle(message)

    async def dead_letter(self, message: Message, error: PermanentError) -> None:
        await self._path_of(message).dead_letter(message, error)
