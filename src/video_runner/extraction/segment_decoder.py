"""Decoding one segment of a video: seek to its IDR picture, decode its pictures, nothing more.

A fresh decoder fed from an IDR picture yields exactly the pictures a decoder of the whole
stream yields there (decision 0010), so the segment's frames, numbered from its
``first_frame``, are the whole video's. Every promise of the plan is checked as the segment is
read: its first packet is the planned one, it holds ``frames`` packets, and the frames shown run
from ``first_pts`` to ``last_pts`` in increasing order, one per packet. Any surprise is an
``InvalidVideo`` (``corrupt``): the index and the stream disagree, and no frame after it is
given. Seen by :class:`~video_runner.extraction.pipeline.FramePipeline` as its decoder.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import av.error

from video_runner.errors import ErrorCode, InvalidVideo
from video_runner.extraction.container import (
    bound_decoder,
    decoding_failed,
    ms_of,
    video_stream,
)
from video_runner.extraction.decode_chunks import Chunk
from video_runner.extraction.stream_checks import StreamChecks

if TYPE_CHECKING:
    from av.container import InputContainer
    from av.packet import Packet
    from av.video.frame import VideoFrame
    from av.video.stream import VideoStream

    from video_runner.domain.params import VideoLimits
    from video_runner.domain.segments import Segment


class SegmentDecoder(StreamChecks):
    """The frames of one segment, in presentation order, with their global indices."""

    def __init__(
        self, container: InputContainer, limits: VideoLimits, segment: Segment, sampled_every: int
    ) -> None:
        self.container = container
        self.limits = limits
        self.segment = segment
        self.sampled_every = sampled_every
        self.stream: VideoStream = video_stream(container)
        self.stream.thread_type = "AUTO"
        bound_decoder(self.stream, limits)
        self.declared_frames = self.stream.frames or None
        self.stream_duration_ms = ms_of(self.stream.duration, self.stream.time_base)
        self.fps = float(self.stream.average_rate or self.stream.guessed_rate or 0)
        self.start_pts = segment.start_pts
        self.rotation = 0
        self._reset_counts()
        #: As ``VideoDecoder``'s, for the extractor's record: nothing is kept from the decoder.
        self.selective = False
        self.packets = segment.frames

    def chunks(self, lanes: int) -> tuple[Chunk, ...]:
        """A segment is decoded by one decoder (its runner's cores take other segments)."""
        del lanes
        return ()

    def frames(self) -> Iterator[tuple[int, VideoFrame]]:
        segment = self.segment
        shown = segment.first_frame
        last_pts: int | None = None
        try:
            for frame in self._decoded():
                pts = frame.pts
                if pts is None or (last_pts is None and pts != segment.first_pts):
                    raise self._broken(f"its first frame shows at pts {pts}")
                if last_pts is not None and pts <= last_pts:
                    raise self._broken(f"frame pts {pts} after {last_pts}")
                if shown == segment.first_frame:
                    self.rotation = (-round(frame.rotation / 90) * 90) % 360
                last_pts = pts
                self.decoded += 1
                yield shown, frame
                shown += 1
        except av.error.FFmpegError as error:
            raise decoding_failed(
                self.stream, self.limits, f"segment {segment.index}: decoding failed: {error}"
            ) from error
        if self.decoded != segment.frames or last_pts != segment.last_pts:
            raise self._broken(
                f"{self.decoded} frames up to pts {last_pts}, planned {segment.frames} up to"
                f" {segment.last_pts}"
            )

    def resume_in_full(self, after: int) -> Iterator[tuple[int, VideoFrame]]:
        raise RuntimeError(f"a segment has no chunks to fall back from (after {after})")

    def _decoded(self) -> Iterator[VideoFrame]:
        for packet in self._packets():
            for frame in packet.decode():
                if frame.is_corrupt:
                    raise InvalidVideo(
                        f"segment {self.segment.index}: a frame decoded with errors",
                        code=ErrorCode.CORRUPT,
                    )
                yield frame
        for frame in self.stream.codec_context.decode(None):
            if frame.time_base is None:
                # FFmpeg gives a drained frame no time base; the whole stream's decoding gets
                # it from the demuxer's last, empty packet (as ``ChunkDecoder`` does).
                frame.time_base = self.stream.time_base
            yield frame

    def _packets(self) -> Iterator[Packet[VideoStream]]:
        """The segment's packets: from its first (after a seek to the keyframe at or before it)
        for as many as it holds."""
        segment = self.segment
        self.container.seek(segment.seek_pts, stream=self.stream, backward=True, any_frame=False)
        taken = 0
        for packet in self.container.demux(self.stream):
            if not packet.size:
                continue
            if packet.is_corrupt:
                raise InvalidVideo(
                    f"segment {segment.index}: a packet is flagged corrupt", code=ErrorCode.CORRUPT
                )
            if taken == 0:
                if packet.dts is None or packet.dts < segment.first_dts:
                    continue  # the seek landed on an earlier keyframe: read on to the segment
                if packet.dts != segment.first_dts or not packet.is_keyframe:
                    raise self._broken(f"it starts at dts {packet.dts}, not {segment.first_dts}")
            yield packet
            taken += 1
            if taken == segment.frames:
                return
        raise self._broken(f"the stream ends after {taken} of its {segment.frames} packets")

    def _broken(self, what: str) -> InvalidVideo:
        return InvalidVideo(
            f"segment {self.segment.index} of {self.segment.count}: {what} (the index and the"
            " stream disagree)",
            code=ErrorCode.CORRUPT,
        )
