"""One open video stream: validated header, then its frames in presentation order, decoding
only the pictures the sampling needs when a demux-only first pass proves which those are, or,
for an intra-only stream, as its packets are read
(docs/decisions/0005-decode-only-what-sampling-needs.md); a plan whose stream splits into
independent chunks offers them to parallel lanes (decision 0010, ``video_chunks``)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING

import av
import av.error

from video_runner.adapters.video_chunks import ChunkDecoder, PlanBroken
from video_runner.adapters.video_container import (
    bound_decoder,
    decoding_failed,
    ms_of,
    open_video,
    reorder_delay,
    video_stream,
)
from video_runner.adapters.video_plan import (
    TimePlan,
    intra_only_stream,
    read_plan,
    read_time_plan,
)
from video_runner.adapters.video_stream_checks import StreamChecks
from video_runner.domain.decode_chunks import Chunk
from video_runner.domain.decode_plan import DecodePlan, PlanRefused
from video_runner.domain.intra_stream import IntraOnlyStream
from video_runner.domain.params import VideoLimits
from video_runner.domain.sampling import SamplingPlan
from video_runner.errors import ErrorCode, InvalidVideo

if TYPE_CHECKING:
    from pathlib import Path

    from av.container import InputContainer
    from av.packet import Packet
    from av.video.frame import VideoFrame
    from av.video.stream import VideoStream


class VideoDecoder(StreamChecks):
    """One open video stream: validated header, then its frames in presentation order.

    With a :class:`DecodePlan`, packets the plan drops never reach the decoder, and each frame's
    index is its pts' presentation rank. Every decoded frame is checked against the plan; the
    first surprise reopens the file and decodes everything, skipping the frames already given.

    ``every_n`` is what the decode plan selects (1: decode everything); ``sampled_every`` is the
    sampling itself, which ``max_sampled_frames`` counts in. A ``sampling`` plan by time is read
    from every packet's pts first (``read_time_plan``): its frames are picked by index, decoded
    selectively when ``planned`` and the stream allows it.
    """

    def __init__(
        self,
        container: InputContainer,
        limits: VideoLimits,
        *,
        path: Path | None = None,
        every_n: int = 1,
        sampled_every: int = 1,
        sampling: SamplingPlan | None = None,
        planned: bool = True,
    ) -> None:
        self.container = container
        self.limits = limits
        self.path = path
        self.sampled_every = sampled_every
        self.stream = video_stream(container)
        # Frame threading; FFmpeg's threads decode without the GIL.
        self.stream.thread_type = "AUTO"
        bound_decoder(self.stream, limits)
        self.declared_frames = self.stream.frames or None
        self.stream_duration_ms = ms_of(self.stream.duration, self.stream.time_base)
        self.fps = float(self.stream.average_rate or self.stream.guessed_rate or 0)
        if sampling is not None:
            self.sampled_every = sampling.rough_every(self.fps)
        self._check_header()
        self.decode_plan: DecodePlan | None = None
        self.time_plan: TimePlan | None = None
        #: An intra-only stream planned as it is read, without a first pass.
        self.intra: IntraOnlyStream | None = None
        if path is not None and sampling is not None:
            self.time_plan = read_time_plan(
                path,
                self.stream.index,
                sampling,
                plan_decoding_too=planned,
                max_frames=self._max_frames(),
                max_selected=limits.max_sampled_frames,
            )
            self.decode_plan = self.time_plan.decode
        elif path is not None:
            self.intra = intra_only_stream(self.stream, every_n)
            if self.intra is None:
                # Positional: tests stand in for read_plan with a ``lambda *_``.
                self.decode_plan = read_plan(path, self.stream.index, every_n, self._max_frames())
        self._reset_counts()
        self.start_pts: int | None = None
        self._frames = self._decode()
        try:
            first = next(self._frames, None)
        except PlanBroken:
            self._decode_everything()
            first = next(self._frames, None)
        if first is None:
            raise self._nothing_decoded()
        self._first: VideoFrame | None = first
        self.start_pts = self.stream.start_time if self.stream.start_time is not None else first.pts
        if self.time_plan is not None and self.time_plan.start_pts is not None:
            # The origin the selection was made from: the first decoded frame may be far in.
            self.start_pts = self.time_plan.start_pts
        self.rotation = (-round(first.rotation / 90) * 90) % 360
        self.info = self._info(first)

    @property
    def packets(self) -> int:
        """Packets of the video stream the plan covers (0 when everything is decoded)."""
        if self.decode_plan is not None:
            return len(self.decode_plan.pts)
        return self.intra.position if self.intra is not None else 0

    @property
    def selective(self) -> bool:
        """Whether packets are kept from the decoder (a plan that drops some)."""
        plan = self.decode_plan
        return self.intra is not None or (plan is not None and plan.dropped > 0)

    def selects(self, index: int) -> bool:
        """Whether the time plan keeps the frame at presentation ``index``."""
        return self.time_plan is not None and index in self.time_plan.selected

    def frames(self) -> Iterator[tuple[int, VideoFrame]]:
        """``(index, frame)`` for every frame decoded, in order; then a completeness check."""
        given = -1
        try:
            for index, frame in self._indexed():
                given = index
                yield index, frame
        except PlanBroken:
            yield from self.resume_in_full(after=given)
            return
        self._check_complete()

    def resume_in_full(self, after: int) -> Iterator[tuple[int, VideoFrame]]:
        """Decode the file again, every picture, yielding the frames after index ``after``."""
        self._decode_everything()
        for index, frame in enumerate(self._frames):
            if index > after:
                yield index, frame
        self._check_complete()

    def chunks(self, lanes: int) -> tuple[Chunk, ...]:
        """The plan's independent chunks for ``lanes`` parallel decoders; none: decode serially."""
        if lanes < 2 or self.decode_plan is None or self.path is None:  # noqa: PLR2004
            return ()
        return self.decode_plan.chunks

    def chunk_decoder(self) -> ChunkDecoder:
        """One more opening of the file, for a lane decoding chunks of the plan."""
        path, plan = self.path, self.decode_plan
        if path is None or plan is None:
            raise RuntimeError("only a planned video read from a path decodes in chunks")
        return ChunkDecoder(path, self.limits, self.stream.index, plan)

    def finish_chunks(self, decoders: list[ChunkDecoder]) -> None:
        """Count what the lanes read, then check the file was complete, as :meth:`frames` does."""
        self._reset_counts()
        for decoder in decoders:
            self.decoded += decoder.decoded
            self.dropped += decoder.dropped
            self._last_frame_seen(decoder.last_pts, decoder.time_base)
        self._check_complete()

    def _indexed(self) -> Iterator[tuple[int, VideoFrame]]:
        plan = self.decode_plan
        first, self._first = self._first, None
        head = [] if first is None else [first]
        if self.intra is not None:
            yield from self._indexed_intra(self.intra, itertools.chain(head, self._frames))
            return
        if plan is None:
            yield from enumerate(itertools.chain(head, self._frames))
            return
        # Enough reordering delay from the start, or the decoder's own heuristics could drop or
        # reorder pictures differently once some are missing.
        if reorder_delay(self.stream) < plan.reorder_depth:
            raise PlanBroken
        expected = iter(plan.decoded_pts)
        for frame in itertools.chain(head, self._frames):
            if frame.pts is None or frame.pts != next(expected, None):
                raise PlanBroken
            yield plan.index_of(frame.pts), frame
        if next(expected, None) is not None:
            raise PlanBroken

    @staticmethod
    def _indexed_intra(
        intra: IntraOnlyStream, frames: Iterator[VideoFrame]
    ) -> Iterator[tuple[int, VideoFrame]]:
        for frame in frames:
            try:
                index = intra.index_of(frame.pts)
            except PlanRefused as refused:
                raise PlanBroken from refused
            yield index, frame
        if not intra.all_given():
            raise PlanBroken  # a kept packet gave no frame

    def _decode_everything(self) -> None:
        self._first = None
        self.intra = None
        self.container.close()
        assert self.path is not None  # noqa: S101 - a plan exists only for a path
        self.container = open_video(self.path, self.limits)
        self.stream = video_stream(self.container)
        self.stream.thread_type = "AUTO"
        bound_decoder(self.stream, self.limits)
        self.decode_plan = None
        self._reset_counts()
        self._frames = self._decode()

    def _decode(self) -> Iterator[VideoFrame]:
        plan = self.decode_plan
        position = 0
        try:
            for packet in self.container.demux(self.stream):
                if packet.is_corrupt:
                    raise InvalidVideo("a packet is flagged corrupt", code=ErrorCode.CORRUPT)
                if packet.size and packet.is_discard:
                    self.discarded_packets += 1
                if packet.size:
                    position += 1
                    if self._kept_from_decoder(plan, position - 1, packet):
                        continue
                for frame in packet.decode():
                    if frame.is_corrupt:
                        raise InvalidVideo(
                            f"frame {self.decoded} decoded with errors", code=ErrorCode.CORRUPT
                        )
                    self.decoded += 1
                    if self.decoded > 1:  # the first frame arrives before start_pts is known
                        self._last_frame_seen(frame.pts, frame.time_base)
                    yield frame
        except av.error.FFmpegError as error:
            raise decoding_failed(
                self.stream, self.limits, f"decoding failed after {self.decoded} frames: {error}"
            ) from error

    def _dropped(self, plan: DecodePlan, position: int, packet: Packet[VideoStream]) -> bool:
        """Whether the plan keeps this packet from the decoder (then it is counted as read)."""
        # The second pass must see the stream the first pass planned for.
        if position >= len(plan.pts) or packet.pts != plan.pts[position]:
            raise PlanBroken
        if not plan.drop[position]:
            return False
        # Counted as a frame for the completeness checks: it was in the file.
        self.dropped += 1
        self._last_frame_seen(packet.pts, packet.time_base)
        return True

    def _kept_from_decoder(
        self, plan: DecodePlan | None, position: int, packet: Packet[VideoStream]
    ) -> bool:
        """Whether a plan (by first pass or as read) keeps this packet from the decoder."""
        if plan is not None:
            return self._dropped(plan, position, packet)
        return self.intra is not None and self._dropped_intra(packet)

    def _dropped_intra(self, packet: Packet[VideoStream]) -> bool:
        """Whether the intra-only plan keeps this packet from the decoder (counted as read)."""
        assert self.intra is not None  # noqa: S101 - the caller checked
        if packet.is_discard:
            raise PlanBroken  # the full decoding trims these exactly as before
        try:
            dropped = self.intra.drops(packet.pts, memoryview(packet))
        except PlanRefused as refused:
            raise PlanBroken from refused
        if dropped:
            self.dropped += 1
            self._last_frame_seen(packet.pts, packet.time_base)
        return dropped
