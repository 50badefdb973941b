"""Kafka as the services see it: publishing, consumed messages, offsets, the notices' topic,
and the webhook a notice is also POSTed to."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Protocol


class Publisher(Protocol):
    """Publishes JSON messages; ``publish`` returns once the broker has acknowledged (acks=all)."""

    async def publish(
        self,
        topic: str,
        key: str,
        value: Mapping[str, Any],
        headers: Mapping[str, str] | None = None,
    ) -> None: ...


class Delivery(NamedTuple):
    """Where the broker stored a published message."""

    partition: int
    offset: int


class RawPublisher(Publisher, Protocol):
    """A publisher that can also send batches and copy a message as it came (dead letters)."""

    async def publish_many(
        self, topic: str, messages: Sequence[tuple[str, Mapping[str, Any]]], *, spread: bool = False
    ) -> list[Delivery]:
        """Publish (key, value) pairs; return once every one is acknowledged, where each went.

        ``spread``: round-robin over the topic's partitions rather than by key, so that a few
        messages of equal weight (a video's segments) reach every consumer alike."""
        ...

    async def publish_raw(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Mapping[str, str]
    ) -> None: ...

    async def partitions(self, topic: str) -> int:
        """How many partitions ``topic`` has."""
        ...


class ConsumedOffsets(Protocol):
    """What a consumer group has committed: tells a queued task from a consumed one."""

    async def committed(self, group_id: str, topic: str) -> dict[int, int]:
        """The next offset the group will read, per partition of ``topic`` it has committed."""
        ...

    async def end_offsets(self, topic: str) -> dict[int, int]:
        """The offset the next message will get, per partition of ``topic``."""
        ...


class NoticeLog(Protocol):
    """The completion notices' topic, partition by partition (docs/decisions/0008)."""

    async def partition_for(self, topic: str, key: str) -> int:
        """The partition a message keyed ``key`` goes to (the producer's default partitioner)."""
        ...

    async def end_offset(self, topic: str, partition: int) -> int:
        """The offset the next message of this partition will get."""
        ...

    async def publish_at(
        self, topic: str, partition: int, key: str, value: Mapping[str, Any]
    ) -> Delivery:
        """Publish to this partition; returns once acknowledged (acks=all, idempotent)."""
        ...

    async def contains(
        self, topic: str, partition: int, start: int, key: str, notice_id: str
    ) -> bool:
        """Whether a message keyed ``key`` with this ``notice_id`` sits in the partition at
        ``start`` or later (up to its end when asked)."""
        ...

    async def close(self) -> None:
        """Release the connections kept between calls."""
        ...


class NoticeFeed(Protocol):
    """Follows the completion notices' topic from where it ended when ``start`` was called."""

    async def start(self, topic: str) -> None: ...

    async def poll(self, timeout_s: float) -> list[tuple[bytes | None, bytes | None]]:
        """(key, value) pairs that arrived since the last poll, waiting at most ``timeout_s``."""
        ...

    async def stop(self) -> None: ...


class WebhookSender(Protocol):
    """POSTs a body to a URL. Errors: ``DependencyUnavailable`` (no connection, timeout)."""

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        """Send; return the HTTP status the receiver answered."""
        ...


class Message(Protocol):
    """A consumed message, as the services see it (aiokafka's ConsumerRecord fits)."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...

    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes | None: ...
