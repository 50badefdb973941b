"""Which tables an MJPEG picture defines itself, read from its marker segments."""

from __future__ import annotations

import pytest

from video_runner.extraction.jpeg_tables import JpegTables, TableUse, tables_of

SOI, SOS = b"\xff\xd8", b"\xff\xda\x00\x02"


def segment(marker: int, body: bytes = b"\x00\x00") -> bytes:
    return bytes([0xFF, marker]) + (len(body) + 2).to_bytes(2, "big") + body


DQT, DHT, SOF0, APP0 = segment(0xDB), segment(0xC4), segment(0xC0), segment(0xE0)


@pytest.mark.parametrize(
    ("picture", "tables"),
    [
        (SOI + APP0 + DQT + SOF0 + DHT + SOS, JpegTables(quantization=True, huffman=True)),
        (SOI + APP0 + DQT + SOF0 + SOS, JpegTables(quantization=True, huffman=False)),
        (SOI + SOF0 + DHT + SOS, JpegTables(quantization=False, huffman=True)),
        (SOI + b"\xff\xff" + DQT + b"\xff\xd0" + SOS, JpegTables(quantization=True, huffman=False)),
    ],
    ids=["full-header", "avi1-standard-huffman", "no-quantization", "fill-and-restart-markers"],
)
def test_the_tables_before_the_scan_are_found(picture, tables):
    assert tables_of(picture) == tables


@pytest.mark.parametrize(
    "picture",
    [b"", b"\x00\x00" + DQT + SOS, SOI + DQT + b"\x00" * 8, SOI + DQT],
    ids=["empty", "no-start-of-image", "garbage-between-segments", "no-scan"],
)
def test_an_unreadable_header_is_none(picture):
    assert tables_of(picture) is None


@pytest.mark.parametrize(
    ("pictures", "self_contained"),
    [
        ([SOI + DQT + DHT + SOS] * 3, True),
        ([SOI + DQT + SOS] * 3, True),
        ([SOI + DQT + DHT + SOS, SOI + DQT + SOS], False),
        ([SOI + DQT + SOS, SOI + SOS], False),
        ([SOI + DQT + SOS, b"junk"], False),
    ],
    ids=["own-tables", "standard-huffman", "huffman-kept-from-before", "no-dqt", "unreadable"],
)
def test_a_stream_is_self_contained_only_if_no_picture_borrows_tables(pictures, self_contained):
    use = TableUse()
    for picture in pictures:
        use.add(picture)
    assert use.self_contained is self_contained
