"""NAL header classification and the decode plan, on hand-built packets."""

from __future__ import annotations

import pytest

from video_runner.extraction.bitstream import (
    BitstreamError,
    Codec,
    NalFormat,
    Picture,
    split_annex_b,
    split_length_prefixed,
)
from video_runner.extraction.decode_plan import (
    PacketInfo,
    PlanRefused,
    plan_decoding,
    reorder_depth,
)

AVCC = bytes([1, 0x64, 0, 0x1F, 0xFF, 0xE1, 0])  # avcC header, 4-byte NAL lengths
H264_IDR = bytes([0x65, 0x88])  # nal_ref_idc 3, type 5
H264_P = bytes([0x41, 0x9A])  # nal_ref_idc 2, type 1
H264_B = bytes([0x01, 0x9E])  # nal_ref_idc 0, type 1
H264_SPS = bytes([0x67, 0x64])


def length_prefixed(*units, size=4):
    return b"".join(len(u).to_bytes(size, "big") + u for u in units)


def annex_b(*units):
    return b"".join(b"\x00\x00\x00\x01" + u for u in units)


def h264(*units):
    return NalFormat.of(Codec.H264, AVCC).picture(length_prefixed(*units))


def sei(*payload_types):
    body = b"".join(bytes([t, 1, 0xAA]) for t in payload_types)
    return bytes([0x06]) + body + b"\x80"


def hevc_unit(kind, temporal_id=0, layer=0):
    return bytes([(kind << 1) | (layer >> 5), ((layer & 0x1F) << 3) | (temporal_id + 1), 0xAF])


def test_an_h264_slice_with_nal_ref_idc_zero_is_disposable_and_a_reference_slice_is_not():
    """nal_ref_idc decides; IDR slices are never disposable."""
    assert h264(H264_B).disposable
    assert not h264(H264_P).disposable
    idr = h264(H264_IDR)
    assert idr.idr
    assert not idr.disposable


def test_access_unit_delimiters_filler_and_timing_sei_do_not_keep_a_picture():
    """AUD, filler data and buffering-period/picture-timing SEI describe only their picture."""
    assert h264(bytes([0x09, 0xF0]), sei(0, 1), H264_B, bytes([0x0C, 0xFF])).disposable


def test_parameter_sets_and_other_sei_messages_keep_a_non_reference_picture():
    """An in-band SPS or a persistent SEI (film grain, 19) may matter to later pictures."""
    assert not h264(H264_SPS, H264_B).disposable
    assert not h264(sei(19), H264_B).disposable
    assert not h264(sei(1, 5), H264_B).disposable


def test_end_of_sequence_marks_the_picture_as_resetting_output():
    """End of sequence (10) changes how decoders treat what follows."""
    picture = h264(H264_B, bytes([0x0A]))
    assert picture.resets_output
    assert not picture.disposable


def test_annex_b_and_length_prefixed_packets_split_into_the_same_units():
    """Start codes of three or four bytes, trailing zeros dropped; lengths of 1, 2 or 4 bytes."""
    units = [H264_P, H264_B + b"\x00\x00"]
    expected = [H264_P, H264_B]
    got = split_annex_b(b"\x00\x00\x01" + units[0] + b"\x00\x00\x00\x01" + units[1])
    assert [bytes(u) for u in got] == expected
    for size in (1, 2, 4):
        split = split_length_prefixed(length_prefixed(*expected, size=size), size)
        assert [bytes(u) for u in split] == expected
    assert NalFormat.of(Codec.H264, None).picture(annex_b(H264_B)).disposable


@pytest.mark.parametrize(
    "packet",
    [b"\x00\x00\x00\x09\x41", b"\x00\x00\x00", b"\x00\x00\x00\x00"],
    ids=["overrun", "short-length", "zero-length"],
)
def test_malformed_length_prefixed_packets_raise_so_the_caller_decodes_everything(packet):
    """A length that overruns, a cut length or an empty unit is a parse error, not a guess."""
    with pytest.raises(BitstreamError):
        NalFormat.of(Codec.H264, AVCC).picture(packet)


def test_annex_b_packet_without_a_leading_start_code_is_a_parse_error():
    """Garbage before the first start code means the framing is not understood."""
    with pytest.raises(BitstreamError):
        split_annex_b(b"\x12\x00\x00\x01\x41")


def test_hevc_sub_layer_non_reference_types_are_disposable_and_reference_types_are_not():
    """Even types 0..14 are sub-layer non-reference; TRAIL_R (1), CRA (21), IDR (19) are not."""
    fmt = NalFormat(Codec.HEVC, None)
    for kind in range(0, 15, 2):
        assert fmt.picture(annex_b(hevc_unit(kind))).disposable, kind
    for kind in (1, 3, 5, 9, 19, 21):
        assert not fmt.picture(annex_b(hevc_unit(kind))).disposable, kind
    assert fmt.picture(annex_b(hevc_unit(19))).idr
    assert fmt.picture(annex_b(hevc_unit(16))).resets_output
    assert not fmt.picture(annex_b(hevc_unit(0, layer=1))).disposable


def test_hevc_configuration_record_selects_length_prefixed_units():
    """An hvcC record's lengthSizeMinusOne gives the prefix size."""
    record = bytes([1] + [0] * 20 + [0x03, 0])
    assert NalFormat.of(Codec.HEVC, record).length_size == 4
    assert NalFormat.of(Codec.HEVC, b"\x00\x00\x00\x01\x40").length_size is None


def drops(plan):
    return tuple(bool(flag) for flag in plan.drop)


def picture(*, idr=False, disposable=False, temporal_id=0, resets=False, has_picture=True):
    return Picture(has_picture, disposable, idr, resets, temporal_id)


def test_the_plan_drops_unselected_disposable_pictures_and_keeps_selected_ones():
    """Presentation index = rank of pts; selected disposable pictures are decoded."""
    # Decoding order I0 P3 b1 b2 P6 b4 b5, pts in 10 ms units.
    order = [(0, False), (30, False), (10, True), (20, True), (60, False), (40, True), (50, True)]
    packets = [PacketInfo(pts, picture(idr=pts == 0, disposable=d)) for pts, d in order]
    plan = plan_decoding(packets, every_n=2)
    assert [plan.index_of(pts) for pts in (0, 10, 20, 30, 40, 50, 60)] == [0, 1, 2, 3, 4, 5, 6]
    assert drops(plan) == (False, False, True, False, False, False, True)
    assert plan.decoded_pts.tolist() == [0, 20, 30, 40, 60]
    assert plan.reorder_depth == 1


@pytest.mark.parametrize(
    ("packets", "reason"),
    [
        ([PacketInfo(None, picture(idr=True))], "no pts"),
        ([PacketInfo(0, picture(idr=True)), PacketInfo(0, picture(disposable=True))], "share"),
        ([PacketInfo(0, picture()), PacketInfo(1, picture(disposable=True))], "IDR"),
        (
            [PacketInfo(0, picture(idr=True)), PacketInfo(1, picture(has_picture=False))],
            "no picture",
        ),
        ([PacketInfo(0, picture(idr=True)), PacketInfo(1, picture(resets=True))], "BLA"),
        (
            [PacketInfo(0, picture(idr=True)), PacketInfo(1, picture()), PacketInfo(2, picture())],
            "dropped",
        ),
        ([], "no packets"),
    ],
    ids=["missing-pts", "duplicate-pts", "no-idr-start", "no-picture", "reset", "nothing", "empty"],
)
def test_the_plan_is_refused_whenever_presentation_order_or_dependencies_are_in_doubt(
    packets, reason
):
    """Missing or repeated pts, a non-IDR start, resets, or nothing to gain: decode everything."""
    with pytest.raises(PlanRefused, match=reason):
        plan_decoding(packets, every_n=2)


def test_only_the_highest_hevc_sub_layer_is_dropped():
    """A sub-layer non-reference picture below the top TemporalId may be used by higher layers."""
    packets = [
        PacketInfo(0, picture(idr=True)),
        PacketInfo(1, picture(disposable=True, temporal_id=0)),
        PacketInfo(2, picture(disposable=True, temporal_id=1)),
        PacketInfo(3, picture(disposable=True, temporal_id=1)),
        PacketInfo(4, picture()),  # selected: the pictures before it are still needed or not
    ]
    assert drops(plan_decoding(packets, every_n=4)) == (False, False, True, True, False)


def test_intra_only_packets_are_all_droppable_and_every_frame_selected_needs_no_plan():
    """Without NAL information (intra-only) any unselected packet goes; every_n=1 has no plan."""
    packets = [PacketInfo(pts, None) for pts in range(6)]
    assert drops(plan_decoding(packets, every_n=3)) == (False, True, True, False, True, True)
    with pytest.raises(PlanRefused):
        plan_decoding(packets, every_n=1)


def test_reorder_depth_counts_pictures_decoded_earlier_but_shown_later():
    """No reordering is 0; I P B is 1; a pyramid I P B1 b b is 2."""
    assert reorder_depth([0, 1, 2, 3]) == 0
    assert reorder_depth([0, 2, 1]) == 1
    assert reorder_depth([0, 4, 2, 1, 3]) == 2
