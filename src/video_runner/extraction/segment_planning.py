"""Planning a video's segments from its index alone, through a :class:`RangeReader`.

Opening the container reads its header (an MP4's ``moov``) and the first picture (the probe);
FFmpeg's index then gives every sample's decoding time, position, size and keyframe flag, and
``mp4_index`` the composition offsets that say when each is shown. Cuts go at keyframes that are
independent in presentation order and whose picture, read alone, is an IDR. Nothing else of the
file is read, so planning a 3-hour video costs its index and a few pictures.

Anything the plan cannot be sure of gives one segment (the whole video, decoded as without
segments) and the reason: another container or codec, a fragmented MP4, an index FFmpeg
rebuilt (edit lists that drop samples), timestamps that disagree with the first packets
demuxed, or a video shorter than two segments.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import av
import av.error
import numpy as np

from video_runner.domain.segments import (
    Planned,
    Segment,
    SegmentPlan,
    cut_positions,
    ids_between,
    selected_ids,
)
from video_runner.errors import ErrorCode, InvalidVideo
from video_runner.extraction.bitstream import BitstreamError, Codec, NalFormat
from video_runner.extraction.container import open_video, video_stream
from video_runner.extraction.decode_chunks import independent_starts
from video_runner.extraction.decoder import VideoDecoder
from video_runner.extraction.mp4_index import NotIndexed, read_track_table

if TYPE_CHECKING:
    import numpy.typing as npt
    from av.container import InputContainer
    from av.video.stream import VideoStream

    from video_runner.domain.params import VideoLimits
    from video_runner.domain.sampling import SamplingPlan
    from video_runner.extraction.range_reader import RangeReader

log = logging.getLogger(__name__)

_BY_NAL = {"h264": Codec.H264, "hevc": Codec.HEVC}
#: Packets demuxed from the start to check the index's timestamps against the demuxer's.
_CHECKED_PACKETS = 64


def plan_segments(
    reader: RangeReader,
    limits: VideoLimits,
    sampling: SamplingPlan,
    seconds: float,
) -> Planned:
    """Probe the video through ``reader`` and cut it into segments of about ``seconds``.

    Raises:
        InvalidVideo: what probing the video raises (not a video, over a limit...), and
            ``too_many_frames`` when the sampling keeps more frames than allowed.
    """
    with open_video(reader, limits) as container:
        try:
            plan = _plan(container, reader, sampling, seconds)
        except _Unplannable as why:
            # Nothing decoded: a video decoded whole is probed by the whole path.
            return Planned(None, None, str(why))
    # A container of its own: planning demuxed the first packets.
    with open_video(reader, limits) as container:
        # As ``VideoFrameSource.probe`` does on a local file: the same checks, the same info.
        info = VideoDecoder(container, limits, sampled_every=sampling.every_n or 1).info
    if limits.max_sampled_frames is not None and plan.sampled > limits.max_sampled_frames:
        raise InvalidVideo(
            f"the sampling keeps {plan.sampled} frames, above the limit of "
            f"{limits.max_sampled_frames}",
            code=ErrorCode.TOO_MANY_FRAMES,
        )
    return Planned(info, plan)


class _Unplannable(Exception):
    pass


def _plan(
    container: InputContainer, reader: RangeReader, sampling: SamplingPlan, seconds: float
) -> SegmentPlan:
    if seconds <= 0:
        raise _Unplannable("segments are off (SEGMENT_SECONDS=0)")
    if container.duration is not None and container.duration / av.time_base < 1.5 * seconds:
        # A cut needs ``seconds`` before it and half as much after.
        raise _Unplannable(f"shorter than two segments of {seconds:g} s")
    stream = video_stream(container)
    index = _read_index(container, stream, reader)
    time_base = stream.time_base
    if time_base is None:
        raise _Unplannable("the stream has no time base")
    pts = index.pts
    start_pts = int(stream.start_time if stream.start_time is not None else pts.min())
    times_ms = None
    if sampling.is_time_based:
        # As ``planning.read_time_plan`` computes them, to the same rounding.
        times_ms = [max(0, round((int(v) - start_pts) * time_base * 1000)) for v in np.sort(pts)]
    kept = selected_ids(sampling, len(pts), times_ms)
    candidates = independent_starts(index.keyframes, pts)
    candidate_times = [float((int(pts[c]) - start_pts) * time_base) for c in candidates]
    cuts = cut_positions(candidates.tolist(), candidate_times, seconds, index.is_idr)
    if len(cuts) < 2:  # noqa: PLR2004
        raise _Unplannable(f"shorter than two segments of {seconds:g} s")
    return _segments(cuts, index.dts, pts, start_pts, kept)


@dataclass(frozen=True, slots=True)
class _Index:
    """Every sample's timestamps and keyframe flag, and how to read one picture alone."""

    dts: npt.NDArray[np.int64]
    pts: npt.NDArray[np.int64]
    keyframes: npt.NDArray[np.bool_]
    is_idr: Callable[[int], bool]


def _read_index(container: InputContainer, stream: VideoStream, reader: RangeReader) -> _Index:
    if "mp4" not in container.format.name and "mov" not in container.format.name:
        raise _Unplannable(f"a {container.format.name} container has no index to plan from")
    codec = stream.codec_context
    if codec.name not in _BY_NAL:
        raise _Unplannable(f"{codec.name} is not cut into segments (H.264 and HEVC are)")
    entries = stream.index_entries
    count = len(entries)
    try:
        table = read_track_table(reader, reader.size, stream.id)
    except NotIndexed as why:
        raise _Unplannable(str(why)) from None
    if table.samples != count:
        raise _Unplannable(f"FFmpeg's index holds {count} of the {table.samples} samples")
    dts = np.fromiter((e.timestamp for e in entries), dtype=np.int64, count=count)
    sizes = np.fromiter((e.size for e in entries), dtype=np.int64, count=count)
    keyframes = np.fromiter((e.is_keyframe for e in entries), dtype=np.bool_, count=count)
    if any(e.is_discard for e in entries) or not np.array_equal(sizes, table.sizes):
        raise _Unplannable("FFmpeg rebuilt the index (an edit list): decoded as one segment")
    pts = dts + table.composition_offsets
    _check_first_packets(container, stream, dts, pts)
    nal = NalFormat.of(_BY_NAL[codec.name], codec.extradata)

    def is_idr(position: int) -> bool:
        """Whether the picture at ``position``, read alone, is an IDR that resets nothing."""
        entry = entries[position]
        try:
            picture = nal.picture(reader.read_at(entry.pos, entry.size))
        except BitstreamError:
            return False
        return picture.idr and not picture.resets_output

    return _Index(dts, pts, keyframes, is_idr)


def _check_first_packets(
    container: InputContainer,
    stream: VideoStream,
    dts: npt.NDArray[np.int64],
    pts: npt.NDArray[np.int64],
) -> None:
    """The first packets the demuxer gives must carry the timestamps the index predicts."""
    try:
        checked = 0
        for packet in container.demux(stream):
            if not packet.size:
                continue
            if checked >= len(dts) or (packet.dts, packet.pts) != (dts[checked], pts[checked]):
                raise _Unplannable(
                    f"packet {checked} has dts/pts {packet.dts}/{packet.pts}, the index says"
                    f" {dts[checked] if checked < len(dts) else None}/"
                    f"{pts[checked] if checked < len(pts) else None}"
                )
            checked += 1
            if checked >= _CHECKED_PACKETS:
                break
    except av.error.FFmpegError as error:
        raise _Unplannable(f"the first packets cannot be demuxed: {error}") from error


def _segments(
    cuts: list[int],
    dts: npt.NDArray[np.int64],
    pts: npt.NDArray[np.int64],
    start_pts: int,
    kept: Sequence[int],
) -> SegmentPlan:
    count = len(dts)
    bounds = [*cuts, count]
    segments = []
    ordinal = 0
    for index, (first, end) in enumerate(itertools.pairwise(bounds)):
        shown = pts[first:end]
        selected = ids_between(kept, first, end)
        segments.append(
            Segment(
                index=index,
                count=len(cuts),
                first_frame=first,
                frames=end - first,
                first_dts=int(dts[first]),
                seek_pts=int(pts[first]),
                first_pts=int(shown.min()),
                last_pts=int(shown.max()),
                start_pts=start_pts,
                first_ordinal=ordinal,
                selected=selected,
            )
        )
        ordinal += len(selected)
    return SegmentPlan(tuple(segments), pictures=count, sampled=ordinal)
