"""The demux-only first pass: read every packet header of the video stream, decode nothing.

It yields the :class:`~video_runner.domain.decode_plan.DecodePlan` the extractor follows, or
``None`` when the stream must be decoded in full (unknown codec, or any doubt: see
docs/decisions/0005-decode-only-what-sampling-needs.md).
"""

from __future__ import annotations

from pathlib import Path

import av
import av.error

from video_runner.domain.bitstream import BitstreamError, Codec, NalFormat
from video_runner.domain.decode_plan import DecodePlan, PacketInfo, PlanRefused, plan_decoding
from video_runner.errors import ErrorCode, InvalidVideo

# Codecs whose every packet decodes on its own; FFmpeg's descriptor must agree (intra_only).
INTRA_ONLY = frozenset({"mjpeg", "prores", "dnxhd"})
_BY_NAL = {"h264": Codec.H264, "hevc": Codec.HEVC}


def read_plan(
    path: Path, stream_index: int, every_n: int, max_frames: int | None = None
) -> DecodePlan | None:
    """The plan for stream ``stream_index`` of ``path``, or ``None`` to decode everything.

    Raises:
        InvalidVideo: ``too_many_frames`` when the stream holds more than ``max_frames`` pictures
            (one per packet for the codecs planned here), whatever its header declared: found
            before any frame is decoded, and the packet list never grows past the cap.
    """
    if every_n < 2:  # noqa: PLR2004 - every frame selected: nothing to gain from a first pass
        return None
    try:
        with av.open(str(path), mode="r") as container:
            stream = container.streams[stream_index]
            codec = stream.codec_context
            name = codec.name
            if name in _BY_NAL:
                nal: NalFormat | None = NalFormat.of(_BY_NAL[name], codec.extradata)
            elif name in INTRA_ONLY and codec.codec.intra_only:
                nal = None
            else:
                return None
            packets: list[PacketInfo] = []
            for packet in container.demux(stream):
                if not packet.size:
                    continue  # the demuxer's end-of-stream marker
                if packet.is_corrupt or packet.is_discard:
                    return None  # the full decode reports or trims these exactly as before
                if max_frames is not None and len(packets) >= max_frames:
                    raise InvalidVideo(
                        f"the video stream holds more than {max_frames} pictures, more than the"
                        " sampled-frame limit allows",
                        code=ErrorCode.TOO_MANY_FRAMES,
                    )
                picture = None if nal is None else nal.picture(memoryview(packet))
                packets.append(PacketInfo(packet.pts, picture))
        return plan_decoding(packets, every_n)
    except (av.error.FFmpegError, BitstreamError, PlanRefused):
        return None
