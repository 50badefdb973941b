"""An in-memory broker: the topics of one test, routed to the services' handlers.

It is a ``ports.RawPublisher`` (it keeps every message a service publishes, per topic and
partition, with offsets as Kafka assigns them) and a consumer of every topic a handler is
subscribed to: ``run`` delivers each partition's messages in order, committing each after its
handler returns, until nothing is left. ``rewind`` moves a topic's consumers back to the start,
as a group that never committed (or a replica that crashed before its commit) would see it.
A handler's ``PermanentError`` goes to its ``dead_letter``, as the consumer loop does.
"""

from __future__ import annotations

import copy
import zlib
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from support.fakes import FakeMessage, FakePublisher, Sent
from video_runner.domain.compact_json import compact_json
from video_runner.errors import PermanentError
from video_runner.ports import Delivery, Message


class Handler(Protocol):
    async def handle(self, message: Message) -> None: ...

    async def dead_letter(self, message: Message, error: PermanentError) -> None: ...


class InMemoryBroker(FakePublisher):
    """Topics kept per partition, delivered to one handler per topic (one consumer group)."""

    def __init__(self, partition_count: int = 4) -> None:
        super().__init__(partition_count)
        self.logs: dict[tuple[str, int], list[FakeMessage]] = {}
        self.delivered = 0
        self._handlers: dict[str, Handler] = {}
        self._committed: dict[tuple[str, int], int] = {}

    def subscribe(self, topic: str, handler: Handler) -> None:
        self._handlers[topic] = handler

    def send(self, topic: str, key: str, value: Mapping[str, Any]) -> None:
        """A message from outside the services (a client's event)."""
        self._append(topic, key.encode(), compact_json(value), {})

    async def publish(
        self,
        topic: str,
        key: str,
        value: Mapping[str, Any],
        headers: Mapping[str, str] | None = None,
    ) -> None:
        await super().publish(topic, key, value, headers)
        self._append(topic, key.encode(), compact_json(value), headers or {})

    async def publish_many(
        self,
        topic: str,
        messages: Sequence[tuple[str, Mapping[str, Any]]],
        *,
        spread: bool = False,  # noqa: ARG002 - by key here: one in-memory consumer reads all
    ) -> list[Delivery]:
        await self._round_trip()
        deliveries = []
        for key, value in messages:
            self.sent.append(Sent(topic, key, copy.deepcopy(dict(value)), {}))
            appended = self._append(topic, key.encode(), compact_json(value), {})
            deliveries.append(Delivery(appended.partition, appended.offset))
        return deliveries

    async def publish_raw(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Mapping[str, str]
    ) -> None:
        await super().publish_raw(topic, key, value, headers)
        self._append(topic, key, value, headers)

    def _append(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Mapping[str, str]
    ) -> FakeMessage:
        partition = zlib.crc32(key or b"") % self.partition_count
        log = self.logs.setdefault((topic, partition), [])
        message = FakeMessage(
            topic,
            partition,
            len(log),
            key,
            value,
            tuple((name, text.encode()) for name, text in headers.items()),
        )
        log.append(message)
        return message

    def rewind(self, topic: str) -> None:
        """Every message of ``topic`` is delivered again."""
        for topic_partition in list(self._committed):
            if topic_partition[0] == topic:
                self._committed[topic_partition] = 0

    def messages(self, topic: str) -> list[FakeMessage]:
        return [m for (t, _), log in sorted(self.logs.items()) if t == topic for m in log]

    async def run(self, max_deliveries: int = 100_000) -> None:
        """Deliver until every subscribed partition is consumed to its end."""
        progress = True
        while progress:
            progress = False
            for (topic, partition), log in sorted(self.logs.items()):
                handler = self._handlers.get(topic)
                if handler is None:
                    continue
                position = self._committed.get((topic, partition), 0)
                while position < len(log):
                    message = log[position]
                    try:
                        await handler.handle(message)
                    except PermanentError as error:
                        await handler.dead_letter(message, error)
                    position += 1
                    self._committed[topic, partition] = position
                    self.delivered += 1
                    progress = True
                    assert self.delivered <= max_deliveries, "the flow does not settle"
