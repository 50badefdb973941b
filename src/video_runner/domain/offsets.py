"""Which Kafka offset may be committed: the contiguous finished prefix of a partition.

Several messages of a partition can be in work at once; committing a later one before an
earlier one finished would lose the earlier one on a crash. The tracker only ever advances the
commit point over an unbroken run of finished offsets.
"""

from __future__ import annotations


class PartitionProgress:
    """Offsets started and finished in one partition (pure bookkeeping, no Kafka)."""

    def __init__(self) -> None:
        self._in_work: set[int] = set()
        self._finished: set[int] = set()
        self._committable: int | None = None

    def start(self, offset: int) -> None:
        self._in_work.add(offset)

    def finish(self, offset: int) -> int | None:
        """Mark ``offset`` done; return the next offset to commit if the prefix advanced."""
        self._in_work.discard(offset)
        self._finished.add(offset)
        lowest_open = min(self._in_work, default=None)
        ready = sorted(o for o in self._finished if lowest_open is None or o < lowest_open)
        if not ready:
            return None
        self._finished.difference_update(ready)
        self._committable = ready[-1] + 1
        return self._committable

    @property
    def in_work(self) -> int:
        return len(self._in_work)
