"""An intra-only stream planned packet by packet, as it is read (pure: no video involved)."""

from __future__ import annotations

import pytest

from video_runner.extraction.decode_plan import PlanRefused
from video_runner.extraction.intra_stream import IntraOnlyStream

# Minimal JPEG headers: SOI, then DQT and/or DHT segments (empty bodies), then SOS.
_SOI, _SOS = b"\xff\xd8", b"\xff\xda\x00\x02"
_DQT, _DHT = b"\xff\xdb\x00\x02", b"\xff\xc4\x00\x02"
BOTH = _SOI + _DQT + _DHT + _SOS
QUANT_ONLY = _SOI + _DQT + _SOS


def test_every_nth_packet_is_kept_and_its_frame_gets_its_position_as_index():
    stream = IntraOnlyStream(3, mjpeg=False)
    dropped = [stream.drops(pts, b"") for pts in range(10, 17)]
    assert dropped == [False, True, True, False, True, True, False]
    assert [stream.index_of(pts) for pts in (10, 13, 16)] == [0, 3, 6]
    assert stream.all_given()
    assert stream.position == 7


@pytest.mark.parametrize("pts", [None, 5, 4], ids=["missing", "repeated", "backwards"])
def test_a_pts_that_does_not_increase_refuses_the_plan(pts):
    stream = IntraOnlyStream(2, mjpeg=False)
    stream.drops(5, b"")
    with pytest.raises(PlanRefused, match="increase"):
        stream.drops(pts, b"")


def test_a_frame_other_than_the_next_kept_one_refuses_the_plan():
    stream = IntraOnlyStream(2, mjpeg=False)
    for pts in range(4):
        stream.drops(pts, b"")
    with pytest.raises(PlanRefused, match="expect"):
        stream.index_of(2)  # the next kept packet is pts 0
    assert not stream.all_given()


def test_mjpeg_pictures_that_bring_their_own_tables_are_planned():
    stream = IntraOnlyStream(2, mjpeg=True)
    assert [stream.drops(pts, BOTH) for pts in range(4)] == [False, True, False, True]


def test_a_kept_mjpeg_picture_after_one_that_borrowed_tables_refuses_the_plan():
    """Some pictures bring Huffman tables and one does not: it reads what another one left."""
    stream = IntraOnlyStream(2, mjpeg=True)
    stream.drops(0, BOTH)
    stream.drops(1, QUANT_ONLY)  # dropped, but it makes the stream's tables shared
    with pytest.raises(PlanRefused, match="tables"):
        stream.drops(2, BOTH)


def test_every_packet_kept_needs_no_plan():
    with pytest.raises(ValueError, match="every_n"):
        IntraOnlyStream(1, mjpeg=False)
