"""Where videos, frames and results are kept: an S3 bucket store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Protocol


class ObjectStore(Protocol):
    """An S3 bucket store. Errors: ``SourceMissing`` (no such key), ``DependencyUnavailable``."""

    async def download_to_file(
        self, bucket: str, key: str, path: Path, *, max_bytes: int | None = None
    ) -> int:
        """Stream the object to ``path`` (never whole in memory); return its size in bytes."""
        ...

    async def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str) -> None: ...

    async def get_bytes(self, bucket: str, key: str) -> bytes: ...

    async def upload_file(self, bucket: str, key: str, path: Path, content_type: str) -> None: ...

    async def ensure_bucket(self, bucket: str) -> None: ...

    async def ping(self) -> None: ...


class ObjectRanges(Protocol):
    """Reads pieces of an object where they are (a video read by byte range, not downloaded).
    Errors: those of ``ObjectStore.get_bytes``; a missing object is ``SourceMissing``."""

    async def size_of(self, bucket: str, key: str, *, max_bytes: int | None = None) -> int:
        """The object's size; ``InvalidVideo`` (``file_too_large``) above ``max_bytes``."""
        ...

    async def read_range(self, bucket: str, key: str, start: int, end: int) -> bytes:
        """The bytes ``[start, end)`` of the object."""
        ...


class ObjectStream(Protocol):
    """Reads an object piece by piece, so a large one (a long video's result) is never whole in
    memory. Errors: those of ``ObjectStore.get_bytes``."""

    def stream(self, bucket: str, key: str) -> AsyncIterator[bytes]:
        """The object's bytes, in pieces of a few hundred KB, in order."""
        ...


class ObjectSweeper(Protocol):
    """Deletes what retention no longer keeps, by key prefix (no lifecycle rule needed)."""

    async def keys_under(self, bucket: str, prefix: str, limit: int = 1000) -> list[str]:
        """Up to ``limit`` keys that start with ``prefix`` (the first ones, in key order)."""
        ...

    async def delete_keys(self, bucket: str, keys: Sequence[str]) -> int:
        """Delete these keys (missing ones are no error); how many were asked to go."""
        ...
