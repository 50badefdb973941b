"""Decoding a video's independent chunks in parallel, one single-threaded decoder per lane.

Each lane opens the file again, demuxes it from the start (skipping, unread by the decoder, the
packets of other lanes' chunks) and decodes the chunks it takes, in increasing order, checking
every packet and every frame against the plan as :class:`VideoDecoder` does. Its frames are
handled in the lane (the caller's ``handle`` may hand them to a worker pool); what ``handle``
returns is queued per chunk and read back in chunk order, so the caller sees the frames in
presentation order. Lanes run at most ``len(lanes)`` chunks ahead of the reader, and a chunk's
queue is bounded, so memory stays bounded whatever the length of the video
(docs/decisions/0010-parallel-chunks-of-independent-pictures.md).
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Generic, TypeVar

import av.error

from video_runner.adapters.video_container import (
    bound_decoder,
    decoding_failed,
    open_video,
    reorder_delay,
)
from video_runner.domain.decode_chunks import Chunk
from video_runner.errors import ErrorCode, InvalidVideo

if TYPE_CHECKING:
    from fractions import Fraction
    from pathlib import Path

    from av.container import InputContainer
    from av.packet import Packet
    from av.video.frame import VideoFrame
    from av.video.stream import VideoStream

    from video_runner.domain.decode_plan import DecodePlan
    from video_runner.domain.params import VideoLimits

T = TypeVar("T")
_POLL_S = 0.1


class PlanBroken(Exception):
    """The decoder's output left the plan: decode everything instead, from the start."""


class ChunkDecoder:
    """One more opening of the video, with a single-threaded decoder that takes chunks in order."""

    def __init__(
        self, path: Path, limits: VideoLimits, stream_index: int, plan: DecodePlan
    ) -> None:
        self.plan = plan
        self.container: InputContainer = open_video(path, limits)
        self.stream: VideoStream = self.container.streams[stream_index]  # type: ignore[assignment]
        # One thread per decoder: the lanes are the parallelism, and frame threads cost CPU.
        self.stream.thread_type = "NONE"
        self.stream.thread_count = 1
        bound_decoder(self.stream, limits)
        self.limits = limits
        self._packets: Iterator[Packet[VideoStream]] = iter(self.container.demux(self.stream))
        self._position = 0
        self.decoded = 0
        self.dropped = 0
        #: The largest pts of a frame decoded or a packet dropped (for the truncation check).
        self.last_pts: int | None = None
        self.time_base: Fraction | None = self.stream.time_base

    def frames(self, chunk: Chunk) -> Iterator[tuple[int, VideoFrame]]:
        """``(index, frame)`` of the chunk's decoded frames in presentation order."""
        plan = self.plan
        if reorder_delay(self.stream) < plan.reorder_depth:
            raise PlanBroken
        start, end = chunk
        expected = iter(plan.expected_in(chunk).tolist())
        codec = self.stream.codec_context
        try:
            while self._position < end:
                packet = self._next_packet()
                if packet.pts is None or packet.pts != plan.pts[self._position]:
                    raise PlanBroken
                position, self._position = self._position, self._position + 1
                if position < start:
                    continue  # another lane's chunk
                if packet.is_corrupt:
                    raise InvalidVideo("a packet is flagged corrupt", code=ErrorCode.CORRUPT)
                if plan.drop[position]:
                    self.dropped += 1
                    self._seen(packet.pts)
                    continue
                yield from self._checked(codec.decode(packet), expected)
            # Drained and reset: the next chunk starts as a fresh decoder would.
            yield from self._checked(codec.decode(None), expected)
            codec.flush_buffers()
        except av.error.FFmpegError as error:
            raise decoding_failed(
                self.stream,
                self.limits,
                f"decoding failed after {self.decoded} frames of a chunk: {error}",
            ) from error
        if next(expected, None) is not None:
            raise PlanBroken

    def close(self) -> None:
        self.container.close()

    def _next_packet(self) -> Packet[VideoStream]:
        for packet in self._packets:
            if packet.size:  # not the demuxer's end-of-stream marker
                return packet
        raise PlanBroken  # the file ended before the packets the first pass saw

    def _checked(
        self, frames: list[VideoFrame], expected: Iterator[int]
    ) -> Iterator[tuple[int, VideoFrame]]:
        for frame in frames:
            if frame.is_corrupt:
                raise InvalidVideo(
                    f"a frame of a chunk decoded with errors (pts {frame.pts})",
                    code=ErrorCode.CORRUPT,
                )
            if frame.pts is None or frame.pts != next(expected, None):
                raise PlanBroken
            if frame.time_base is None:
                # Frames drained without a packet carry no time base; the stream's is theirs.
                frame.time_base = self.time_base
            self.decoded += 1
            self._seen(frame.pts)
            yield self.plan.index_of(frame.pts), frame

    def _seen(self, pts: int) -> None:
        if self.last_pts is None or pts > self.last_pts:
            self.last_pts = pts


_END = object()


class ChunkLanes(Generic[T]):
    """Lanes taking the chunks in order; what ``handle`` makes of each frame, read in order.

    ``handle(index, frame)`` runs in the lane and returns what to pass on, or ``None`` to pass
    nothing (a frame the sampling does not keep). ``per_chunk`` bounds what waits in each chunk's
    queue for the reader. Setting ``stop`` (or :meth:`close`) makes the lanes and the reader end.
    """

    def __init__(
        self,
        open_decoder: Callable[[], ChunkDecoder],
        chunks: tuple[Chunk, ...],
        *,
        lanes: int,
        handle: Callable[[int, VideoFrame], T | None],
        stop: threading.Event,
        per_chunk: int,
    ) -> None:
        self.chunks = chunks
        self.decoders: list[ChunkDecoder] = []
        self._open_decoder = open_decoder
        self._handle = handle
        self._outer_stop = stop
        self._halt = threading.Event()
        self._lanes = lanes
        self._queues: list[queue.Queue[object]] = [queue.Queue(per_chunk) for _ in chunks]
        self._next_chunk = itertools.count()
        self._reading = 0
        self._ahead = threading.Condition()
        self._threads = [
            threading.Thread(target=self._run_lane, name=f"chunk-lane-{lane}", daemon=True)
            for lane in range(lanes)
        ]
        for thread in self._threads:
            thread.start()

    def results(self) -> Iterator[tuple[int, T]]:
        """``(index, handled)`` in chunk order; re-raises what a lane met, at its place."""
        for number, chunk_queue in enumerate(self._queues):
            with self._ahead:
                self._reading = number
                self._ahead.notify_all()
            while (item := self._get(chunk_queue)) is not _END:
                if isinstance(item, BaseException):
                    raise item
                yield item  # type: ignore[misc]

    def close(self) -> None:
        self._halt.set()
        with self._ahead:
            self._ahead.notify_all()
        for thread in self._threads:
            thread.join()
        for decoder in self.decoders:
            decoder.close()

    def _stopping(self) -> bool:
        return self._halt.is_set() or self._outer_stop.is_set()

    def _run_lane(self) -> None:
        decoder: ChunkDecoder | None = None
        while not self._stopping():
            number = next(self._next_chunk)
            if number >= len(self.chunks) or not self._wait_turn(number):
                return
            chunk_queue = self._queues[number]
            try:
                if decoder is None:
                    decoder = self._open_decoder()
                    self.decoders.append(decoder)
                for index, frame in decoder.frames(self.chunks[number]):
                    if self._stopping():
                        return
                    handled = self._handle(index, frame)
                    if handled is not None and not self._put(chunk_queue, (index, handled)):
                        return
            except BaseException as error:  # noqa: BLE001 - re-raised by the reader, in order
                self._put(chunk_queue, error)
                return  # this lane's decoder is in doubt; the reader stops at this chunk
            self._put(chunk_queue, _END)

    def _wait_turn(self, number: int) -> bool:
        """Whether chunk ``number`` may start: within ``lanes`` chunks of the reader's."""
        with self._ahead:
            while number >= self._reading + self._lanes:
                if self._stopping():
                    return False
                self._ahead.wait(_POLL_S)
        return not self._stopping()

    def _put(self, chunk_queue: queue.Queue[object], item: object) -> bool:
        while not self._stopping():
            try:
                chunk_queue.put(item, timeout=_POLL_S)
            except queue.Full:
                continue
            return True
        return False

    def _get(self, chunk_queue: queue.Queue[object]) -> object:
        while True:
            try:
                return chunk_queue.get(timeout=_POLL_S)
            except queue.Empty:
                if self._stopping():
                    return _END
