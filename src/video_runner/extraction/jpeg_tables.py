"""Which tables an MJPEG picture carries itself: whether it can be decoded without the one before.

FFmpeg's MJPEG decoder keeps the quantization and Huffman tables of the last picture that
defined them, and a picture that omits a table uses the kept one (the AVI1 convention omits the
Huffman tables and means the standard ones, which the decoder starts with). A picture decoded
out of order, after other pictures were dropped, then sees other kept tables than in full
decoding. The plan is safe when every picture brings its own quantization tables and either
every picture or none brings Huffman tables: then no picture reads what another one left.
"""

from __future__ import annotations

from dataclasses import dataclass

_SOI, _SOS, _EOI = 0xD8, 0xDA, 0xD9
_DQT, _DHT = 0xDB, 0xC4
# Markers without a length field (RSTn, TEM) may stand between segments.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
_MARKER = 0xFF


@dataclass(frozen=True, slots=True)
class JpegTables:
    """The tables one picture defines before its scan data."""

    quantization: bool
    huffman: bool


def tables_of(data: bytes | memoryview) -> JpegTables | None:
    """The tables the JPEG picture in ``data`` defines; ``None`` if its header cannot be read."""
    view = memoryview(data)
    if len(view) < 4 or view[0] != _MARKER or view[1] != _SOI:  # noqa: PLR2004
        return None
    quantization = huffman = False
    position = 2
    while position + 4 <= len(view):
        if view[position] != _MARKER:
            return None
        marker = view[position + 1]
        if marker == _MARKER:  # fill bytes before a marker
            position += 1
            continue
        if marker in _STANDALONE:
            position += 2
            continue
        if marker in {_SOS, _EOI}:
            return JpegTables(quantization, huffman)
        quantization = quantization or marker == _DQT
        huffman = huffman or marker == _DHT
        position += 2 + (view[position + 2] << 8 | view[position + 3])
    return None


class TableUse:
    """Folds the tables of every picture of a stream into one verdict."""

    def __init__(self) -> None:
        self.readable = True
        self.all_quantization = True
        self.some_huffman = False
        self.all_huffman = True

    def add(self, data: bytes | memoryview) -> None:
        tables = tables_of(data)
        if tables is None:
            self.readable = False
            return
        self.all_quantization = self.all_quantization and tables.quantization
        self.some_huffman = self.some_huffman or tables.huffman
        self.all_huffman = self.all_huffman and tables.huffman

    @property
    def self_contained(self) -> bool:
        """No picture depends on tables another picture defined."""
        huffman_alike = self.all_huffman or not self.some_huffman
        return self.readable and self.all_quantization and huffman_alike
