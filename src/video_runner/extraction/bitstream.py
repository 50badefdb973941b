"""Which coded pictures no other picture needs: NAL headers of H.264 and HEVC, nothing more.

A picture is *disposable* when dropping it before the decoder changes no other decoded picture.
The bitstream says so in each NAL unit header, so reading a few bytes per packet is enough:

* H.264: a slice with ``nal_ref_idc == 0`` is never used for inter prediction (ITU-T H.264
  7.4.1), and the decoding process of later pictures (POC, frame_num gaps, reference marking)
  reads only reference pictures' state;
* HEVC: a *sub-layer non-reference* picture (NAL types 0, 2, 4, ..., 14) is not used by
  pictures of its own sub-layer (ITU-T H.265 3.132); at the highest ``TemporalId`` present in
  the stream no other sub-layer is left that could use it.

Anything this module does not recognise as harmless keeps the packet: parameter sets, end of
sequence, data partitions, extension layers and SEI messages other than timing and filler (some,
like film grain characteristics, persist to later pictures). Every parser raises
:class:`BitstreamError` on malformed input so that callers can fall back to decoding everything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

# H.264 NAL unit types (Table 7-1).
_H264_SLICE = 1
_H264_IDR = 5
_H264_SEI = 6
_H264_AUD = 9
_H264_END_OF_SEQUENCE = 10
_H264_END_OF_STREAM = 11
_H264_FILLER = 12
_H264_VCL = frozenset(range(1, 6))
# HEVC NAL unit types (Table 7-1).
_HEVC_VCL_LAST = 31
_HEVC_SUB_LAYER_NON_REFERENCE = frozenset(range(0, 15, 2))
_HEVC_BLA = frozenset({16, 17, 18})
_HEVC_IDR = frozenset({19, 20})
_HEVC_AUD = 35
_HEVC_END_OF_SEQUENCE = 36
_HEVC_END_OF_BITSTREAM = 37
_HEVC_FILLER = 38
_HEVC_SEI = frozenset({39, 40})
# SEI payload types that describe only their own picture's timing or are padding: buffering
# period, picture timing, filler payload (both codecs), decoded picture hash (HEVC).
_SAFE_SEI = frozenset({0, 1, 3})
_SAFE_HEVC_SEI = _SAFE_SEI | {132}
_LENGTH_SIZES = frozenset({1, 2, 4})
_RBSP_STOP = 0x80
_AVCC_MIN = 7
_HVCC_MIN = 23
_START_CODE = b"\x00\x00\x01"


class BitstreamError(ValueError):
    """The data is not a well-formed sequence of NAL units."""


class Codec(Enum):
    H264 = "h264"
    HEVC = "hevc"


@dataclass(frozen=True, slots=True)
class Picture:
    """What one packet (one access unit) holds, as far as dropping it is concerned."""

    has_picture: bool
    #: No other picture of the stream can depend on this one (given ``temporal_id`` for HEVC).
    disposable: bool
    #: An instantaneous decoder refresh: decoding can start here and output every picture.
    idr: bool
    #: Something that makes decoders skip or reset output (end of sequence, BLA pictures).
    resets_output: bool
    #: HEVC ``TemporalId`` of the picture's slices (0 for H.264).
    temporal_id: int


@dataclass(frozen=True, slots=True)
class NalFormat:
    """How NAL units are framed in packets: a length prefix of ``length_size`` bytes, or Annex B."""

    codec: Codec
    length_size: int | None

    @classmethod
    def of(cls, codec: Codec, extradata: bytes | None) -> NalFormat:
        """FFmpeg's own rule: a configuration record (avcC/hvcC) means length-prefixed NAL units."""
        data = extradata or b""
        if codec is Codec.H264 and data[:1] == b"\x01":
            if len(data) < _AVCC_MIN:
                raise BitstreamError("avcC record too short")
            return cls(codec, _length_size(data[4]))
        if codec is Codec.HEVC and len(data) > 3 and (data[0] or data[1] or data[2] > 1):  # noqa: PLR2004
            if len(data) < _HVCC_MIN:
                raise BitstreamError("hvcC record too short")
            return cls(codec, _length_size(data[21]))
        return cls(codec, None)

    def picture(self, packet: bytes | memoryview) -> Picture:
        """Classify one packet; :class:`BitstreamError` if it does not parse."""
        units = (
            split_length_prefixed(packet, self.length_size)
            if self.length_size
            else (split_annex_b(packet))
        )
        if self.codec is Codec.H264:
            return h264_picture(units)
        return hevc_picture(units)


def _length_size(byte: int) -> int:
    size = (byte & 0x03) + 1
    if size not in _LENGTH_SIZES:
        raise BitstreamError(f"NAL length size of {size} bytes")
    return size


def split_length_prefixed(packet: bytes | memoryview, length_size: int) -> list[memoryview]:
    """The NAL units of a length-prefixed (avcC/hvcC, as in MP4) packet."""
    view = memoryview(packet)
    units = []
    offset = 0
    while offset < len(view):
        if offset + length_size > len(view):
            raise BitstreamError("truncated NAL length")
        size = int.from_bytes(view[offset : offset + length_size], "big")
        offset += length_size
        if size == 0 or offset + size > len(view):
            raise BitstreamError(f"NAL unit of {size} bytes at {offset} overruns the packet")
        units.append(view[offset : offset + size])
        offset += size
    return units


def split_annex_b(packet: bytes | memoryview) -> list[memoryview]:
    """The NAL units of an Annex B (start-code delimited, as in MPEG-TS) packet."""
    data = bytes(packet)
    view = memoryview(data)
    start = data.find(_START_CODE)
    if start < 0 or data[:start].strip(b"\x00"):
        raise BitstreamError("no start code at the beginning of the packet")
    units = []
    while start >= 0:
        begin = start + len(_START_CODE)
        start = data.find(_START_CODE, begin)
        end = len(data) if start < 0 else start
        # Zero bytes before a start code belong to it (zero_byte, trailing_zero_8bits).
        while end > begin and data[end - 1] == 0:
            end -= 1
        if end > begin:
            units.append(view[begin:end])
    if not units:
        raise BitstreamError("no NAL unit in the packet")
    return units


def h264_picture(units: Sequence[memoryview]) -> Picture:
    """Classify an H.264 access unit from its NAL units."""
    has_picture = idr = resets = False
    disposable = True
    for unit in units:
        header = unit[0]
        if header & 0x80:
            raise BitstreamError("forbidden_zero_bit set")
        kind, ref_idc = header & 0x1F, (header >> 5) & 0x03
        if kind in _H264_VCL:
            has_picture = True
            idr = idr or kind == _H264_IDR
            # Data partitions (2..4) and IDR slices are kept: only plain non-reference slices go.
            disposable = disposable and kind == _H264_SLICE and ref_idc == 0
        elif kind in {_H264_END_OF_SEQUENCE, _H264_END_OF_STREAM}:
            resets = True
            disposable = False
        elif kind == _H264_SEI:
            disposable = disposable and _sei_is_harmless(unit[1:], _SAFE_SEI)
        elif kind not in {_H264_AUD, _H264_FILLER}:
            disposable = False
    return Picture(has_picture, has_picture and disposable, idr, resets, 0)


def hevc_picture(units: Sequence[memoryview]) -> Picture:
    """Classify an HEVC access unit from its NAL units (base layer only)."""
    has_picture = idr = resets = False
    disposable = True
    temporal_ids = set()
    for unit in units:
        kind, layer, temporal_id = _hevc_header(unit)
        if layer != 0:
            disposable = False
        if kind <= _HEVC_VCL_LAST:
            has_picture = True
            temporal_ids.add(temporal_id)
            idr = idr or kind in _HEVC_IDR
            resets = resets or kind in _HEVC_BLA
            disposable = disposable and kind in _HEVC_SUB_LAYER_NON_REFERENCE
        elif kind in {_HEVC_END_OF_SEQUENCE, _HEVC_END_OF_BITSTREAM}:
            resets = True
            disposable = False
        elif kind in _HEVC_SEI:
            disposable = disposable and _sei_is_harmless(unit[2:], _SAFE_HEVC_SEI)
        elif kind not in {_HEVC_AUD, _HEVC_FILLER}:
            disposable = False
    if len(temporal_ids) > 1:
        raise BitstreamError("slices of one picture with different TemporalId")
    temporal_id = temporal_ids.pop() if temporal_ids else 0
    return Picture(has_picture, has_picture and disposable, idr, resets, temporal_id)


def _hevc_header(unit: memoryview) -> tuple[int, int, int]:
    """``(nal_unit_type, nuh_layer_id, TemporalId)`` of an HEVC NAL unit."""
    if len(unit) < 2:  # noqa: PLR2004 - the HEVC NAL header
        raise BitstreamError("HEVC NAL unit shorter than its header")
    if unit[0] & 0x80:
        raise BitstreamError("forbidden_zero_bit set")
    temporal_id_plus1 = unit[1] & 0x07
    if temporal_id_plus1 == 0:
        raise BitstreamError("nuh_temporal_id_plus1 is 0")
    return (unit[0] >> 1) & 0x3F, ((unit[0] & 0x01) << 5) | (unit[1] >> 3), temporal_id_plus1 - 1


def _sei_is_harmless(payload: memoryview, safe: frozenset[int]) -> bool:
    """Whether every SEI message in this RBSP is one of the ``safe`` payload types."""
    rbsp = bytes(payload).replace(b"\x00\x00\x03", b"\x00\x00")
    offset = 0
    while offset < len(rbsp) and not (offset == len(rbsp) - 1 and rbsp[offset] == _RBSP_STOP):
        kind, offset = _sei_number(rbsp, offset)
        size, offset = _sei_number(rbsp, offset)
        if kind not in safe:
            return False
        offset += size
        if offset > len(rbsp):
            raise BitstreamError("SEI message overruns its NAL unit")
    return True


def _sei_number(rbsp: bytes, offset: int) -> tuple[int, int]:
    value = 0
    while True:
        if offset >= len(rbsp):
            raise BitstreamError("truncated SEI message header")
        byte = rbsp[offset]
        offset += 1
        value += byte
        if byte != 0xFF:  # noqa: PLR2004 - the SEI extension byte
            return value, offset
