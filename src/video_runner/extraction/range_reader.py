"""A seekable, read-only file over ranged reads of a remote object, with a small block cache.

FFmpeg reads a container through it as through a local file: the index (an MP4's ``moov``) and
then only the bytes of the pictures it is asked for, fetched in blocks of ``block_bytes`` by the
caller's ``fetch(start, end)`` (an S3 range GET). The few most recent blocks are kept, so a
demuxer's small back-and-forth seeks cost nothing, and memory stays a few MB whatever the size
of the object. ``fetched`` counts the bytes asked for, for logs and the benchmark.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from collections.abc import Callable

#: Read per fetch: large enough for S3's per-request cost, small enough to waste little
#: around the header and the first pictures every opening reads.
BLOCK_BYTES = 512 * 1024
#: Blocks kept: a demuxer's back-and-forth between the index and the pictures stays cached.
CACHED_BLOCKS = 16

#: ``fetch(start, end)``: the bytes ``[start, end)`` of the object (end excluded).
Fetch = Callable[[int, int], bytes]


class RangeReader(io.RawIOBase):
    """A file object over ``fetch``; ``name`` names the object in error messages."""

    def __init__(
        self,
        fetch: Fetch,
        size: int,
        *,
        name: str = "object",
        block_bytes: int = BLOCK_BYTES,
        cached_blocks: int = CACHED_BLOCKS,
    ) -> None:
        super().__init__()
        if block_bytes < 1 or cached_blocks < 1:
            raise ValueError("block_bytes and cached_blocks must be at least 1")
        self._fetch = fetch
        self.size = size
        self.name = name
        self._block_bytes = block_bytes
        self._cached_blocks = cached_blocks
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self._position = 0
        #: Bytes fetched so far (a block fetched twice counts twice).
        self.fetched = 0
        #: Fetches made so far.
        self.requests = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            position = offset
        elif whence == io.SEEK_CUR:
            position = self._position + offset
        elif whence == io.SEEK_END:
            position = self.size + offset
        else:
            raise ValueError(f"unknown whence {whence}")
        if position < 0:
            raise OSError(f"seek to {position}, before the start of {self.name}")
        self._position = position
        return position

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        """Fill ``buffer`` from the position, across blocks; short only at the end."""
        filled = 0
        while filled < len(buffer) and self._position < self.size:
            index, offset = divmod(self._position, self._block_bytes)
            piece = self._block(index)[offset : offset + len(buffer) - filled]
            buffer[filled : filled + len(piece)] = piece
            filled += len(piece)
            self._position += len(piece)
        return filled

    def read_at(self, start: int, length: int) -> bytes:
        """Exactly the bytes ``[start, start + length)`` (fewer at the end), in one fetch that
        bypasses the cache (one picture far from anything else); the position is kept."""
        end = min(self.size, start + length)
        if start >= end:
            return b""
        data = self._fetch(start, end)
        self.fetched += len(data)
        self.requests += 1
        return data

    def _block(self, index: int) -> bytes:
        block = self._blocks.get(index)
        if block is not None:
            self._blocks.move_to_end(index)
            return block
        start = index * self._block_bytes
        end = min(self.size, start + self._block_bytes)
        block = self._fetch(start, end)
        if len(block) != end - start:
            raise OSError(f"{self.name}: asked for bytes {start}-{end - 1}, got {len(block)} bytes")
        self.fetched += len(block)
        self.requests += 1
        self._blocks[index] = block
        if len(self._blocks) > self._cached_blocks:
            self._blocks.popitem(last=False)
        return block
