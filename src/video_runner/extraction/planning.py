"""The demux-only first pass: read every packet header of the video stream, decode nothing.

It yields the :class:`~video_runner.extraction.decode_plan.DecodePlan` the extractor follows, or
``None`` when the stream must be decoded in full (unknown codec, or any doubt: see
docs/decisions/0005-decode-only-what-sampling-needs.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import av
import av.error

from video_runner.domain.sampling import SamplingPlan
from video_runner.errors import ErrorCode, InvalidVideo
from video_runner.extraction.bitstream import BitstreamError, Codec, NalFormat, Picture
from video_runner.extraction.decode_plan import DecodePlan, PacketTable, PlanRefused, plan_decoding
from video_runner.extraction.intra_stream import IntraOnlyStream
from video_runner.extraction.jpeg_tables import TableUse

if TYPE_CHECKING:
    from av.video.stream import VideoStream

# Codecs whose every packet decodes on its own; FFmpeg's descriptor must agree (intra_only).
INTRA_ONLY = frozenset({"mjpeg", "prores", "dnxhd"})
_BY_NAL = {"h264": Codec.H264, "hevc": Codec.HEVC}


def intra_only_stream(stream: VideoStream, every_n: int) -> IntraOnlyStream | None:
    """A plan made while reading, for an intra-only stream sampled every ``every_n``-th frame:
    it needs no first pass (``intra_stream``); ``None`` for any other stream."""
    codec = stream.codec_context
    if every_n < 2 or codec.name not in INTRA_ONLY or not codec.codec.intra_only:  # noqa: PLR2004
        return None
    return IntraOnlyStream(every_n, mjpeg=codec.name == "mjpeg")


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
            packets = PacketTable()
            tables = TableUse() if name == "mjpeg" else None
            for packet in container.demux(stream):
                if not packet.size:
                    continue  # the demuxer's end-of-stream marker
                if packet.is_corrupt or packet.is_discard:
                    return None  # the full decode reports or trims these exactly as before
                _refuse_past(max_frames, len(packets))
                picture = None if nal is None else nal.picture(memoryview(packet))
                if tables is not None:
                    tables.add(memoryview(packet))
                packets.append(packet.pts, picture)
        if tables is not None and not tables.self_contained:
            return None  # a picture reads tables an earlier one left in the decoder
        return plan_decoding(packets, every_n)
    except (av.error.FFmpegError, BitstreamError, PlanRefused):
        return None


@dataclass(frozen=True, slots=True)
class TimePlan:
    """A plan by time, read from every packet's pts before anything is decoded.

    ``selected`` are the kept frames' presentation indices (their ``frame_id``); ``decode`` is
    the selective plan that yields exactly those, or ``None`` to decode everything and pick them
    by index. ``start_pts`` is the origin of the timestamps the selection was made from, which
    the decoder must use too (it may start at a keyframe far from the first frame).
    """

    selected: frozenset[int]
    decode: DecodePlan | None
    start_pts: int | None


def read_time_plan(
    path: Path,
    stream_index: int,
    sampling: SamplingPlan,
    *,
    plan_decoding_too: bool = True,
    max_frames: int | None = None,
    max_selected: int | None = None,
) -> TimePlan:
    """Demux every packet of the stream (any codec), select by timestamp, plan the decoding.

    Raises:
        InvalidVideo: ``too_many_frames`` when the stream holds more than ``max_frames`` pictures
            or the plan keeps more than ``max_selected``; ``corrupt`` when it cannot be demuxed.
    """
    try:
        with av.open(str(path), mode="r") as container:
            stream = container.streams[stream_index]
            codec = stream.codec_context
            nal = (
                NalFormat.of(_BY_NAL[codec.name], codec.extradata)
                if codec.name in _BY_NAL
                else None
            )
            plannable = nal is not None or (codec.name in INTRA_ONLY and codec.codec.intra_only)
            tables = TableUse() if codec.name == "mjpeg" else None
            packets = PacketTable()
            for packet in container.demux(stream):
                if not packet.size:
                    continue
                plannable = plannable and not (packet.is_corrupt or packet.is_discard)
                _refuse_past(max_frames, len(packets))
                picture = _picture(nal, memoryview(packet)) if plannable else None
                plannable = plannable and (nal is None or picture is not None)
                if plannable and tables is not None:
                    tables.add(memoryview(packet))
                packets.append(packet.pts, picture)
            time_base = stream.time_base
            start_time = stream.start_time
            rate = float(stream.average_rate or stream.guessed_rate or 0)
    except av.error.FFmpegError as error:
        raise InvalidVideo(
            f"the video cannot be demuxed: {error}", code=ErrorCode.CORRUPT
        ) from error
    start_pts = start_time if start_time is not None else packets.min_pts
    if not packets.missing_pts and time_base is not None and start_pts is not None:
        times = [max(0, round((v - start_pts) * time_base * 1000)) for v in sorted(packets.pts)]
    else:  # the decoder's own fallback for frames without a pts
        times = [round(i * 1000 / rate) if rate else 0 for i in range(len(packets))]
    selected = sampling.select(times)
    if max_selected is not None and len(selected) > max_selected:
        raise InvalidVideo(
            f"the sampling keeps {len(selected)} frames, above the limit of {max_selected}",
            code=ErrorCode.TOO_MANY_FRAMES,
        )
    plannable = plannable and (tables is None or tables.self_contained)
    decode = None
    if plan_decoding_too and plannable and selected:
        try:
            decode = plan_decoding(packets, selected=selected)
        except PlanRefused:
            decode = None
    return TimePlan(selected, decode, start_pts)


def _picture(nal: NalFormat | None, data: memoryview) -> Picture | None:
    """The packet's picture; None for intra-only codecs, or when its NAL units cannot be read
    (then nothing is planned: the decoder judges the stream, as with ``read_plan``)."""
    if nal is None:
        return None
    try:
        return nal.picture(data)
    except BitstreamError:
        return None


def _refuse_past(max_frames: int | None, pictures: int) -> None:
    """Refuse the video as soon as it holds more pictures than the cap: the list stops there."""
    if max_frames is not None and pictures >= max_frames:
        raise InvalidVideo(
            f"the video stream holds more than {max_frames} pictures, more than the"
            " sampled-frame limit allows",
            code=ErrorCode.TOO_MANY_FRAMES,
        )
