"""What the dispatch core drives and is driven by: the consumer it polls, the handlers it runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, TypeAlias

from aiokafka.structs import ConsumerRecord, OffsetAndMetadata, TopicPartition

from video_runner.errors import PermanentError

Record: TypeAlias = ConsumerRecord[bytes, bytes]
Offsets: TypeAlias = dict[TopicPartition, OffsetAndMetadata]


class DispatchConsumer(Protocol):
    """The part of aiokafka's consumer the dispatch core uses."""

    def assignment(self) -> set[TopicPartition]: ...

    def pause(self, *partitions: TopicPartition) -> None: ...

    def resume(self, *partitions: TopicPartition) -> None: ...

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> Mapping[TopicPartition, Sequence[Record]]: ...

    async def commit(self, offsets: Offsets | None = None) -> None: ...

    def seek(self, partition: TopicPartition, offset: int) -> None: ...


class RecordHandler(Protocol):
    """What a consumer loop drives. ``handle`` returns once the record's effects are durable."""

    async def handle(self, record: Record) -> None: ...

    async def dead_letter(self, record: Record, error: PermanentError) -> None:
        """Record a permanent failure the handler did not catch itself (bug, poison message)."""
        ...


class BatchHandler(RecordHandler, Protocol):
    """A handler that can also take many records at once (``handle`` stays for one at a time)."""

    async def handle_batch(self, records: Sequence[Record]) -> None:
        """Return once every record's effects are durable; poison records are its to dead-letter."""
        ...
