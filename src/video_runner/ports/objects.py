"""Where videos, frames and results are kept: an S3 bucket store."""

from __future__ import annotations

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
