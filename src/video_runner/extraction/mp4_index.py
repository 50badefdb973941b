"""What an MP4's sample table says about one track, read from its ``moov`` box alone.

FFmpeg's index (``stream.index_entries``) gives every sample's decoding time, byte position,
size and keyframe flag, but not its composition offset (``ctts``), which says when each picture
is *shown*: the one fact a cut between independent pictures needs before anything is decoded.
This reads the ``moov`` box (a few MB even for hours of video) through a seekable file and
returns, per sample of the track, its composition offset and its size (``stsz``), so the caller
can check the table against FFmpeg's index sample by sample.

Only the boxes on the way are parsed (``moov/trak/{tkhd,mdia/minf/stbl/{stsz,stz2,ctts}}``);
fragmented files (``moof``) have no whole table in ``moov`` and are refused with a reason.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

#: Boxes that hold other boxes, on the way to the sample table.
_CONTAINERS = frozenset({b"moov", b"trak", b"mdia", b"minf", b"stbl"})
_HEADER = struct.Struct(">I4s")
_LARGE = struct.Struct(">Q")
#: A ``moov`` larger than this is not read (a 3-hour video's is a few MB).
MAX_MOOV_BYTES = 64 * 1024 * 1024


class Seekable(Protocol):
    def seek(self, offset: int, whence: int = ..., /) -> int: ...
    def read(self, size: int = ..., /) -> bytes | None: ...


class NotIndexed(Exception):
    """The file has no usable sample table in ``moov``; the message says why."""


@dataclass(frozen=True, slots=True)
class TrackTable:
    """One track's samples in decoding order: composition offsets and sizes."""

    track_id: int
    composition_offsets: npt.NDArray[np.int64]
    sizes: npt.NDArray[np.int64]

    @property
    def samples(self) -> int:
        return len(self.sizes)


def read_track_table(file: Seekable, size: int, track_id: int) -> TrackTable:
    """The sample table of track ``track_id`` (FFmpeg's ``stream.id`` for an MP4/MOV stream).

    Raises:
        NotIndexed: no ``moov`` box, a fragmented file, no such track, or a malformed table.
    """
    moov = _top_level_moov(file, size)
    for trak in _children(moov, b"trak"):
        boxes = dict(_boxes(trak))
        tkhd = boxes.get(b"tkhd")
        if tkhd is None or _track_id(tkhd) != track_id:
            continue
        stbl = _descend(boxes, (b"mdia", b"minf", b"stbl"))
        if stbl is None:
            raise NotIndexed(f"track {track_id} has no sample table")
        tables = dict(_boxes(stbl))
        sizes = _sizes(tables)
        offsets = _composition_offsets(tables.get(b"ctts"), len(sizes))
        return TrackTable(track_id, offsets, sizes)
    raise NotIndexed(f"no track {track_id} in moov")


def _top_level_moov(file: Seekable, size: int) -> bytes:
    position = 0
    while position + _HEADER.size <= size:
        file.seek(position)
        box_size, kind = _HEADER.unpack(_read(file, _HEADER.size))
        header = _HEADER.size
        if box_size == 1:
            box_size = _LARGE.unpack(_read(file, _LARGE.size))[0]
            header += _LARGE.size
        elif box_size == 0:
            box_size = size - position
        if box_size < header:
            raise NotIndexed(f"a malformed box at byte {position}")
        if kind == b"moof":
            raise NotIndexed("a fragmented MP4 (moof): no whole sample table in moov")
        if kind == b"moov":
            if box_size > MAX_MOOV_BYTES:
                raise NotIndexed(f"moov of {box_size} bytes, above {MAX_MOOV_BYTES}")
            file.seek(position + header)
            return _read(file, box_size - header)
        position += box_size
    raise NotIndexed("no moov box")


def _read(file: Seekable, length: int) -> bytes:
    data = file.read(length)
    if data is None or len(data) != length:
        raise NotIndexed("the file ends inside a box")
    return data


def _boxes(data: bytes) -> list[tuple[bytes, bytes]]:
    """The boxes directly inside ``data``, as ``(type, payload)``."""
    found: list[tuple[bytes, bytes]] = []
    position = 0
    while position + _HEADER.size <= len(data):
        box_size, kind = _HEADER.unpack_from(data, position)
        header = _HEADER.size
        if box_size == 1:
            box_size = _LARGE.unpack_from(data, position + header)[0]
            header += _LARGE.size
        elif box_size == 0:
            box_size = len(data) - position
        if box_size < header or position + box_size > len(data):
            raise NotIndexed(f"a malformed {kind!r} box in moov")
        found.append((kind, data[position + header : position + box_size]))
        position += box_size
    return found


def _children(data: bytes, kind: bytes) -> list[bytes]:
    return [payload for found, payload in _boxes(data) if found == kind]


def _descend(boxes: dict[bytes, bytes], path: tuple[bytes, ...]) -> bytes | None:
    current: bytes | None = None
    for kind in path:
        current = boxes.get(kind)
        if current is None:
            return None
        if kind in _CONTAINERS:
            boxes = dict(_boxes(current))
    return current


def _track_id(tkhd: bytes) -> int:
    version = tkhd[0]
    # version 1: 64-bit creation and modification times before the id.
    offset = 4 + (16 if version == 1 else 8)
    return int(struct.unpack_from(">I", tkhd, offset)[0])


def _sizes(tables: dict[bytes, bytes]) -> npt.NDArray[np.int64]:
    stsz = tables.get(b"stsz")
    if stsz is not None:
        fixed, count = struct.unpack_from(">II", stsz, 4)
        if fixed:
            return np.full(count, fixed, dtype=np.int64)
        if len(stsz) < 12 + 4 * count:
            raise NotIndexed("stsz shorter than its sample count")
        return np.frombuffer(stsz, dtype=">u4", count=count, offset=12).astype(np.int64)
    if b"stz2" in tables:
        raise NotIndexed("compact sample sizes (stz2) are not read")
    raise NotIndexed("no sample sizes (stsz)")


def _composition_offsets(ctts: bytes | None, samples: int) -> npt.NDArray[np.int64]:
    if ctts is None:
        return np.zeros(samples, dtype=np.int64)
    (entries,) = struct.unpack_from(">I", ctts, 4)
    if len(ctts) < 8 + 8 * entries:
        raise NotIndexed("ctts shorter than its entry count")
    table = np.frombuffer(ctts, dtype=">u4", count=2 * entries, offset=8).reshape(entries, 2)
    counts = table[:, 0].astype(np.int64)
    # Version 1 offsets are signed; version 0 ones are unsigned, but muxers write negative
    # ones there too, and FFmpeg reads them as signed: so does this.
    values = table[:, 1].astype(np.uint32).view(np.int32).astype(np.int64)
    offsets = np.repeat(values, counts)
    if len(offsets) != samples:
        raise NotIndexed(f"ctts covers {len(offsets)} samples of {samples}")
    return offsets
