"""A streaming :class:`~video_runner.ports.FrameSource` over a local video file.

Decoding is PyAV's (FFmpeg, frame-threaded); preprocessing and JPEG are OpenCV's. Both release the
GIL, so one decoder thread and a small pool of worker threads use every core without a process
pool (measured: docs/decisions/0002-extraction-concurrency.md). Only the selected pictures and
the pictures they depend on reach the decoder, when a demux-only first pass proves which those are
(docs/decisions/0005-decode-only-what-sampling-needs.md); otherwise every picture is decoded.
Only the selected frames are converted to BGR, into arrays each worker thread reuses; at most
``max_buffered_frames`` frames are in flight between the decoder and the consumer, whatever the
length of the video.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import queue
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, cast

import av
import av.error
import cv2

from video_runner.adapters.video_plan import TimePlan, read_plan, read_time_plan
from video_runner.domain.decode_plan import DecodePlan
from video_runner.domain.params import Preprocessing, Sampling, VideoLimits
from video_runner.domain.preprocess import Image, encode_jpeg
from video_runner.domain.preprocess_buffers import PreprocessBuffers
from video_runner.domain.sampling import SamplingPlan
from video_runner.domain.video import ExtractedFrame, VideoInfo
from video_runner.errors import ErrorCode, InvalidVideo

if TYPE_CHECKING:
    from pathlib import Path

    from av.container import InputContainer
    from av.packet import Packet
    from av.video.frame import VideoFrame
    from av.video.stream import VideoStream

#: Called with ``(frame_id, image)`` just before JPEG encoding: lets tests compare exact pixels.
#: The array is the worker thread's and is overwritten by its next frame: copy it to keep it.
ImageHook = Callable[[int, Image], None]

_POLL_S = 0.1
_ROTATE_CLOCKWISE = {
    90: cv2.ROTATE_90_CLOCKWISE,
    180: cv2.ROTATE_180,
    270: cv2.ROTATE_90_COUNTERCLOCKWISE,
}
# Demuxers FFmpeg will happily open that do not hold a video: text art and still images.
_NOT_VIDEO_FORMATS = frozenset({"tty", "image2", "ico", "gif"})
# A truncation the decoder cannot see: the last frame ends this long before the declared end.
_MAX_MISSING_TAIL_MS = 1000


class VideoFrameSource:
    """Sampled, preprocessed JPEG frames of a local video file, streamed with bounded memory."""

    def __init__(
        self,
        sampling: Sampling | None = None,
        preprocessing: Preprocessing | None = None,
        limits: VideoLimits | None = None,
        *,
        workers: int = 2,
        max_buffered_frames: int = 8,
        image_hook: ImageHook | None = None,
        decode_all: bool = False,
    ) -> None:
        if workers < 1 or max_buffered_frames < 1:
            raise ValueError("workers and max_buffered_frames must be at least 1")
        self.plan = SamplingPlan.of(sampling or Sampling())
        self.preprocessing = preprocessing or Preprocessing()
        self.limits = limits or VideoLimits()
        self.workers = workers
        self.max_buffered_frames = max_buffered_frames
        self._image_hook = image_hook
        #: Feed every packet to the decoder (the reference the selective decoding must equal).
        self.decode_all = decode_all
        self._buffers = threading.local()
        #: How the last started extraction decoded: ``"selective"`` or ``"full"``; for tests and
        #: the benchmark, with the share of packets it kept from the decoder.
        self.last_mode = ""
        self.last_dropped = 0
        self.last_packets = 0

    def probe(self, path: Path) -> VideoInfo:
        """Validate the file and read its properties (decodes its first frame, nothing more)."""
        with _open(path, self.limits) as container:
            return _Decoder(container, self.limits, sampled_every=self.plan.every_n or 1).info

    def iter_frames(self, path: Path, plan: SamplingPlan | None = None) -> Iterator[ExtractedFrame]:
        """Yield the sampled frames in frame_id order; raise ``InvalidVideo`` when the file is bad.

        ``plan`` is this video's sampling (an event's options); by default the source's own.

        Frames already yielded before a ``CORRUPT`` error are not the whole video: callers must
        treat the error as the outcome. Closing the generator early stops decoding promptly.
        """
        pipeline = self._start(path, plan)
        try:
            while (frame := pipeline.next()) is not None:
                yield frame
        finally:
            pipeline.close()

    async def extract(
        self, path: Path, plan: SamplingPlan | None = None
    ) -> AsyncGenerator[ExtractedFrame, None]:
        """Like :meth:`iter_frames`; blocking waits and CPU work stay off the event loop."""
        starting = asyncio.ensure_future(asyncio.to_thread(self._start, path, plan))
        try:
            pipeline = await asyncio.shield(starting)
        except asyncio.CancelledError:
            # The thread still delivers a running pipeline; it must not outlive the cancellation.
            starting.add_done_callback(_close_when_started)
            raise
        try:
            while (frame := await asyncio.to_thread(pipeline.next)) is not None:
                yield frame
        finally:
            await asyncio.to_thread(pipeline.close)

    def _start(self, path: Path, plan: SamplingPlan | None = None) -> _Pipeline:
        plan = plan or self.plan
        container = _open(path, self.limits)
        try:
            if plan.is_time_based:
                decoder = _Decoder(
                    container, self.limits, path=path, sampling=plan, planned=not self.decode_all
                )
            else:
                every_n = 1 if self.decode_all else plan.every_n or 1
                decoder = _Decoder(
                    container,
                    self.limits,
                    path=path,
                    every_n=every_n,
                    sampled_every=plan.every_n or 1,
                )
        except BaseException:
            container.close()
            raise
        self._record(decoder)
        selects = decoder.selects if plan.is_time_based else plan.is_selected
        return _Pipeline(
            decoder, self._finish, selects, self.workers, self.max_buffered_frames, self._record
        )

    def _record(self, decoder: _Decoder) -> None:
        self.last_mode = "full" if decoder.decode_plan is None else "selective"
        self.last_dropped = decoder.dropped
        self.last_packets = decoder.packets

    def _finish(self, job: _Job) -> ExtractedFrame:
        # Runs on a worker thread: every call below releases the GIL for the heavy part.
        buffers = getattr(self._buffers, "arrays", None)
        if buffers is None:
            buffers = self._buffers.arrays = PreprocessBuffers()
        image = cast("Image", job.frame.to_ndarray(format="bgr24"))
        if job.rotation:
            image = buffers.rotate(image, _ROTATE_CLOCKWISE[job.rotation])
        image = buffers.preprocess(image, self.preprocessing)
        if self._image_hook is not None:
            self._image_hook(job.frame_id, image)
        height, width = image.shape[:2]
        return ExtractedFrame(
            frame_id=job.frame_id,
            timestamp_ms=job.timestamp_ms,
            width=width,
            height=height,
            jpeg=encode_jpeg(image, self.preprocessing.jpeg_quality),
        )


def _close_when_started(starting: asyncio.Future[_Pipeline]) -> None:
    if not starting.cancelled() and starting.exception() is None:
        asyncio.get_running_loop().run_in_executor(None, starting.result().close)


@dataclass(frozen=True, slots=True)
class _Job:
    frame_id: int
    timestamp_ms: int
    rotation: int
    frame: VideoFrame


class _PlanBroken(Exception):
    """The decoder's output left the plan: decode everything instead, from the start."""


class _Decoder:
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
        self.stream = _video_stream(container)
        # Frame threading; FFmpeg's threads decode without the GIL.
        self.stream.thread_type = "AUTO"
        self.declared_frames = self.stream.frames or None
        self.stream_duration_ms = _ms(self.stream.duration, self.stream.time_base)
        self.fps = float(self.stream.average_rate or self.stream.guessed_rate or 0)
        if sampling is not None:
            self.sampled_every = sampling.rough_every(self.fps)
        self._check_header()
        self.decode_plan: DecodePlan | None = None
        self.time_plan: TimePlan | None = None
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
            # Positional: tests stand in for read_plan with a ``lambda *_``.
            self.decode_plan = read_plan(path, self.stream.index, every_n, self._max_frames())
        self.packets = len(self.decode_plan.pts) if self.decode_plan else 0
        self._reset_counts()
        self.start_pts: int | None = None
        self._frames = self._decode()
        try:
            first = next(self._frames, None)
        except _PlanBroken:
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

    def selects(self, index: int) -> bool:
        """Whether the time plan keeps the frame at presentation ``index``."""
        return self.time_plan is not None and index in self.time_plan.selected

    def _reset_counts(self) -> None:
        self.decoded = 0
        self.discarded_packets = 0
        self.dropped = 0
        self.last_timestamp_ms = 0

    def frames(self) -> Iterator[tuple[int, VideoFrame]]:
        """``(index, frame)`` for every frame decoded, in order; then a completeness check."""
        given = -1
        try:
            for index, frame in self._indexed():
                given = index
                yield index, frame
        except _PlanBroken:
            self._decode_everything()
            for index, frame in enumerate(self._frames):
                if index > given:
                    yield index, frame
        self._check_complete()

    def _indexed(self) -> Iterator[tuple[int, VideoFrame]]:
        plan = self.decode_plan
        first, self._first = self._first, None
        head = [] if first is None else [first]
        if plan is None:
            yield from enumerate(itertools.chain(head, self._frames))
            return
        # Enough reordering delay from the start, or the decoder's own heuristics could drop or
        # reorder pictures differently once some are missing.
        if _reorder_delay(self.stream) < plan.reorder_depth:
            raise _PlanBroken
        expected = iter(plan.decoded_pts)
        for frame in itertools.chain(head, self._frames):
            if frame.pts is None or frame.pts != next(expected, None):
                raise _PlanBroken
            yield plan.index_of(frame.pts), frame
        if next(expected, None) is not None:
            raise _PlanBroken

    def _decode_everything(self) -> None:
        self.container.close()
        assert self.path is not None  # noqa: S101 - a plan exists only for a path
        self.container = _open(self.path, self.limits)
        self.stream = _video_stream(self.container)
        self.stream.thread_type = "AUTO"
        self.decode_plan = None
        self._reset_counts()
        self._frames = self._decode()

    def timestamp_ms(self, frame: VideoFrame, index: int) -> int:
        """Presentation time from the container's timestamps (right for variable frame rate)."""
        if frame.pts is None or self.start_pts is None or frame.time_base is None:
            return round(index * 1000 / self.fps) if self.fps else 0
        return max(0, round((frame.pts - self.start_pts) * frame.time_base * 1000))

    def _last_frame_seen(self, pts: int | None, time_base: Fraction | None) -> None:
        if pts is not None and time_base is not None and self.start_pts is not None:
            end = round((pts - self.start_pts) * time_base * 1000)
            self.last_timestamp_ms = max(self.last_timestamp_ms, end)

    def check_frame(self, frame: VideoFrame, index: int, timestamp_ms: int) -> None:
        """Limits hold for every decoded frame, not just the header: headers can lie."""
        _check_pixels(frame.width, frame.height, self.limits)
        limit = self.limits.max_duration_ms
        if limit is not None and timestamp_ms > limit:
            raise InvalidVideo(
                f"video runs past {timestamp_ms} ms, above the limit of {limit} ms",
                code=ErrorCode.TOO_LONG,
            )
        cap = self._max_frames()
        # Checked before the frame is handed on, so at most the cap is ever uploaded.
        if cap is not None and index >= cap:
            raise InvalidVideo(
                f"the video holds more than {self.limits.max_sampled_frames} sampled frames"
                f" (every {self.sampled_every}th of more than {cap} decoded), above the limit",
                code=ErrorCode.TOO_MANY_FRAMES,
            )

    def _max_frames(self) -> int | None:
        """Frames in the file beyond which sampling passes ``max_sampled_frames``."""
        cap = self.limits.max_sampled_frames
        return None if cap is None else cap * self.sampled_every

    def _decode(self) -> Iterator[VideoFrame]:
        plan = self.decode_plan
        position = 0
        try:
            for packet in self.container.demux(self.stream):
                if packet.is_corrupt:
                    raise InvalidVideo("a packet is flagged corrupt", code=ErrorCode.CORRUPT)
                if packet.size and packet.is_discard:
                    self.discarded_packets += 1
                if plan is not None and packet.size:
                    position += 1
                    if self._dropped(plan, position - 1, packet):
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
            raise InvalidVideo(
                f"decoding failed after {self.decoded} frames: {error}", code=ErrorCode.CORRUPT
            ) from error

    def _dropped(self, plan: DecodePlan, position: int, packet: Packet[VideoStream]) -> bool:
        """Whether the plan keeps this packet from the decoder (then it is counted as read)."""
        # The second pass must see the stream the first pass planned for.
        if position >= len(plan.pts) or packet.pts != plan.pts[position]:
            raise _PlanBroken
        if not plan.drop[position]:
            return False
        # Counted as a frame for the completeness checks: it was in the file.
        self.dropped += 1
        self._last_frame_seen(packet.pts, packet.time_base)
        return True

    def _check_header(self) -> None:
        codec = self.stream.codec_context
        _check_pixels(codec.width, codec.height, self.limits)
        duration = self._duration_ms()
        limit = self.limits.max_duration_ms
        if limit is not None and duration is not None and duration > limit:
            raise InvalidVideo(
                f"video lasts {duration} ms, above the limit of {limit} ms", code=ErrorCode.TOO_LONG
            )
        self._check_frame_count()

    def _check_frame_count(self) -> None:
        """A video bomb (a small file, a huge frame count) is refused before any frame is made."""
        cap = self._max_frames()
        if cap is None:
            return
        frames = self.declared_frames
        source = "declares"
        if not frames:
            # Only the measured average rate: FFmpeg's guessed rate can be the field rate or the
            # time base (2x or 40x too high), which would refuse honest videos. Without it, the
            # demux pass (read_plan) or the decoding itself counts the frames.
            duration = self._video_duration_ms()
            rate = self.stream.average_rate
            if duration and rate:
                frames = math.ceil(duration * rate / 1000)
                source = f"lasts {duration} ms at {float(rate):g} fps, so about"
        if frames and frames > cap:
            raise InvalidVideo(
                f"the video {source} {frames} frames: more than {self.limits.max_sampled_frames}"
                f" sampled frames at every {self.sampled_every}th, above the limit",
                code=ErrorCode.TOO_MANY_FRAMES,
            )

    def _duration_ms(self) -> int | None:
        if self.stream_duration_ms is not None:
            return self.stream_duration_ms
        if self.container.duration is None:
            return None
        return _ms(self.container.duration, Fraction(1, av.time_base))

    def _nothing_decoded(self) -> InvalidVideo:
        if self.declared_frames:
            return InvalidVideo(
                f"none of the {self.declared_frames} declared frames could be decoded",
                code=ErrorCode.CORRUPT,
            )
        return InvalidVideo("the video stream has no frames", code=ErrorCode.NO_FRAMES)

    def _check_complete(self) -> None:
        if self.declared_frames:
            # Packets kept from the decoder were in the file: they count, a missing tail does not.
            if self.decoded + self.dropped + self.discarded_packets < self.declared_frames:
                raise InvalidVideo(
                    f"only {self.decoded + self.dropped} of the {self.declared_frames} frames the"
                    " container declares could be read (truncated or corrupt)",
                    code=ErrorCode.CORRUPT,
                )
            return
        # Without a frame count (Matroska/WebM), a declared duration is the only promise to check.
        declared = self._video_duration_ms()
        period_ms = 1000 / self.fps if self.fps else 0
        if declared is not None and self.last_timestamp_ms + period_ms < (
            declared - max(_MAX_MISSING_TAIL_MS, 3 * period_ms)
        ):
            raise InvalidVideo(
                f"frames stop at {self.last_timestamp_ms} ms of a declared {declared} ms"
                " (truncated or corrupt)",
                code=ErrorCode.CORRUPT,
            )

    def _video_duration_ms(self) -> int | None:
        # The container's duration is the longest stream's: only trust it when video is alone.
        if self.stream_duration_ms is not None or len(self.container.streams) > 1:
            return self.stream_duration_ms
        return self._duration_ms()

    def _info(self, first: VideoFrame) -> VideoInfo:
        width, height = first.width, first.height
        if self.rotation in {90, 270}:
            width, height = height, width
        return VideoInfo(
            width=width,
            height=height,
            fps=round(self.fps, 3),
            frame_count=self.declared_frames,
            duration_ms=self._duration_ms(),
            rotation=self.rotation,
            codec=self.stream.codec_context.name,
        )


_END = object()


@dataclass
class _Pipeline:
    """A decoder thread feeding a worker pool through a bounded, ordered queue of futures."""

    decoder: _Decoder
    finish: Callable[[_Job], ExtractedFrame]
    #: Whether the frame at a presentation index is kept (the video's sampling plan).
    selects: Callable[[int], bool]
    workers: int
    max_buffered_frames: int
    #: Told about the decoder once it has finished (how it decoded, what it dropped).
    on_finished: Callable[[_Decoder], None] = lambda _: None
    _queue: queue.Queue[object] = field(init=False)
    _stop: threading.Event = field(init=False, default_factory=threading.Event)
    _pool: ThreadPoolExecutor = field(init=False)
    _thread: threading.Thread = field(init=False)
    _done: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self._queue = queue.Queue(maxsize=self.max_buffered_frames)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="frame-worker")
        self._thread = threading.Thread(target=self._produce, name="frame-decoder", daemon=True)
        self._thread.start()

    def next(self) -> ExtractedFrame | None:
        """The next frame in order, ``None`` at the end; re-raises what went wrong."""
        while not self._done:
            try:
                item = self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                if self._stop.is_set():
                    return None
                continue
            if item is _END:
                self._done = True
            elif isinstance(item, BaseException):
                self._done = True
                raise item
            elif isinstance(item, Future):
                frame: ExtractedFrame = item.result()
                return frame
        return None

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.decoder.container.close()

    def _produce(self) -> None:
        try:
            self._feed()
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, re-raised there
            self._put(error)
        else:
            self._put(_END)

    def _feed(self) -> None:
        decoder = self.decoder
        try:
            self._feed_frames(decoder)
        finally:
            self.on_finished(decoder)

    def _feed_frames(self, decoder: _Decoder) -> None:
        for index, frame in decoder.frames():
            if self._stop.is_set():
                return
            timestamp_ms = decoder.timestamp_ms(frame, index)
            # Every decoded frame, selected or not: a stream may grow its pictures mid-way.
            decoder.check_frame(frame, index, timestamp_ms)
            if not self.selects(index):
                continue
            job = _Job(index, timestamp_ms, decoder.rotation, frame)
            if not self._put(self._pool.submit(self.finish, job)):
                return

    def _put(self, item: object) -> bool:
        # Blocking here is the backpressure that bounds memory; the stop flag keeps it interruptible
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
            except queue.Full:
                continue
            return True
        return False


def _open(path: Path, limits: VideoLimits) -> InputContainer:
    size = path.stat().st_size
    if size == 0:
        raise InvalidVideo(f"{path.name} is an empty file", code=ErrorCode.EMPTY_FILE)
    if limits.max_bytes is not None and size > limits.max_bytes:
        raise InvalidVideo(
            f"{path.name} has {size} bytes, above the limit of {limits.max_bytes}",
            code=ErrorCode.FILE_TOO_LARGE,
        )
    try:
        container = av.open(str(path), mode="r")
    except av.error.FFmpegError as error:
        if _looks_like_a_container(path):
            raise InvalidVideo(
                f"{path.name} is a damaged video container: {error}", code=ErrorCode.CORRUPT
            ) from error
        raise InvalidVideo(
            f"{path.name} is not a video: {error}", code=ErrorCode.NOT_A_VIDEO
        ) from error
    name = container.format.name
    if name in _NOT_VIDEO_FORMATS or name.endswith("_pipe"):
        container.close()
        raise InvalidVideo(
            f"{path.name} is not a video (FFmpeg reads it as {name!r})", code=ErrorCode.NOT_A_VIDEO
        )
    return container


def _video_stream(container: InputContainer) -> VideoStream:
    for stream in container.streams.video:
        # Cover art of an audio file shows up as a one-picture video stream.
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    raise InvalidVideo("the file has no video stream", code=ErrorCode.NO_VIDEO_STREAM)


def _reorder_delay(stream: VideoStream) -> int:
    """The decoder's output delay in frames (FFmpeg's ``has_b_frames``); 0 if PyAV hides it."""
    # PyAV's ``has_b_frames`` is a bool; the raw count is ``reorder_depth`` (not in the stubs).
    return int(getattr(stream.codec_context, "reorder_depth", 0))


def _check_pixels(width: int, height: int, limits: VideoLimits) -> None:
    if limits.max_pixels is not None and width * height > limits.max_pixels:
        raise InvalidVideo(
            f"frames of {width}x{height} exceed the limit of {limits.max_pixels} pixels",
            code=ErrorCode.FRAME_TOO_LARGE,
        )


def _ms(value: int | None, time_base: Fraction | None) -> int | None:
    if not value or time_base is None:
        return None
    return round(value * time_base * 1000)


def _looks_like_a_container(path: Path) -> bool:
    """Whether the file starts like a known video container (so failing to open it is damage)."""
    with path.open("rb") as file:
        head = file.read(512)
    return (
        head[4:8] in {b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"}
        or head.startswith((b"\x1a\x45\xdf\xa3", b"FLV", b"OggS", b"\x00\x00\x01\xba"))
        or (head.startswith(b"RIFF") and head[8:12] == b"AVI ")
        or (len(head) > 188 and head[0] == head[188] == 0x47)  # noqa: PLR2004 - MPEG-TS sync
    )
