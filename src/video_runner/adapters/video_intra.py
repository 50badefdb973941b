"""Intra-only streams (MJPEG, ProRes, DNxHD) decoded by the worker threads, packet by packet.

FFmpeg's decoders of these codecs have no frame threads, so the decoder thread decoded every kept
picture alone while the workers waited for it. Their packets depend on nothing, so a kept packet
travels to a worker as a :class:`PendingFrame` and is decoded there, beside the others, each
worker with its own codec context (a codec context is not thread-safe). Each worker opens the
same file once to get that context, so its parameters are exactly the stream's; the pixels are
those of decoding in order (tested bit for bit against full decoding).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

import av
import av.error

from video_runner.adapters.video_container import check_pixels
from video_runner.adapters.video_plan import INTRA_ONLY
from video_runner.domain.params import VideoLimits
from video_runner.errors import ErrorCode, InvalidVideo

if TYPE_CHECKING:
    from pathlib import Path

    from av.container import InputContainer
    from av.packet import Packet
    from av.video.codeccontext import VideoCodecContext
    from av.video.frame import VideoFrame
    from av.video.stream import VideoStream


def is_intra_only(stream: VideoStream) -> bool:
    """Whether every packet of ``stream`` decodes on its own (FFmpeg's descriptor agrees)."""
    codec = stream.codec_context
    return codec.name in INTRA_ONLY and bool(codec.codec.intra_only)


class IntraDecoders:
    """One codec context per worker thread for the video stream of ``path``."""

    def __init__(self, path: Path, stream_index: int, limits: VideoLimits) -> None:
        self._path = path
        self._stream_index = stream_index
        self._limits = limits
        self._local = threading.local()
        self._opened: list[InputContainer] = []
        self._lock = threading.Lock()

    def pending(self, packet: Packet[VideoStream], width: int, height: int) -> PendingFrame:
        return PendingFrame(packet, self, width, height)

    def decode(self, packet: Packet[VideoStream]) -> VideoFrame:
        """The one picture of ``packet``, decoded on the calling thread."""
        try:
            frames = self._context().decode(packet)
        except av.error.FFmpegError as error:
            raise InvalidVideo(
                f"the picture at pts {packet.pts} cannot be decoded: {error}",
                code=ErrorCode.CORRUPT,
            ) from error
        problem = None
        if len(frames) != 1:
            problem = f"decoded into {len(frames)} frames, not one"
        elif frames[0].is_corrupt:
            problem = "decoded with errors"
        if problem is not None:
            raise InvalidVideo(f"the picture at pts {packet.pts} {problem}", code=ErrorCode.CORRUPT)
        frame: VideoFrame = frames[0]
        check_pixels(frame.width, frame.height, self._limits)
        return frame

    def _context(self) -> VideoCodecContext:
        context: VideoCodecContext | None = getattr(self._local, "context", None)
        if context is None:
            container = av.open(str(self._path), mode="r")
            with self._lock:
                self._opened.append(container)
            (stream,) = [s for s in container.streams.video if s.index == self._stream_index]
            # One picture out per packet in (frame threads would delay it); the workers are
            # the parallelism here.
            stream.codec_context.thread_type = "SLICE"
            context = self._local.context = stream.codec_context
        return context

    def close(self) -> None:
        with self._lock:
            opened, self._opened = self._opened, []
        for container in opened:
            container.close()


@dataclass(frozen=True, slots=True)
class PendingFrame:
    """A kept packet of an intra-only stream: what the pipeline needs before its pixels exist."""

    packet: Packet[VideoStream]
    decoders: IntraDecoders
    #: The stream's size; each decoded picture is checked against the limits again.
    width: int
    height: int

    @property
    def pts(self) -> int | None:
        return self.packet.pts

    @property
    def time_base(self) -> Fraction | None:
        return self.packet.time_base

    def decode(self) -> VideoFrame:
        return self.decoders.decode(self.packet)
