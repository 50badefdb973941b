"""The extraction pipeline: a decoder thread (or lanes decoding independent chunks, in parallel)
feeding a worker pool through a bounded, ordered queue of futures, so memory stays bounded
whatever the length of the video."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from video_runner.domain.video import ExtractedFrame
from video_runner.extraction.decode_chunks import Chunk
from video_runner.extraction.decoder import VideoDecoder
from video_runner.extraction.parallel_chunks import ChunkLanes, PlanBroken
from video_runner.extraction.segment_decoder import SegmentDecoder

if TYPE_CHECKING:
    from av.video.frame import VideoFrame

_POLL_S = 0.1
#: Finished frames a lane may queue for a chunk the reader has not reached (a GOP's worth).
_PER_CHUNK = 64


@dataclass(frozen=True, slots=True)
class FrameJob:
    frame_id: int
    timestamp_ms: int
    rotation: int
    frame: VideoFrame


_END = object()


@dataclass
class FramePipeline:
    """A decoder thread feeding a worker pool through a bounded, ordered queue of futures."""

    #: The whole video, or one segment of it.
    decoder: VideoDecoder | SegmentDecoder
    finish: Callable[[FrameJob], ExtractedFrame]
    #: Whether the frame at a presentation index is kept (the video's sampling plan).
    selects: Callable[[int], bool]
    workers: int
    max_buffered_frames: int
    #: Told about the decoder once it has finished (how it decoded, what it dropped), and how
    #: many chunks lanes decoded.
    on_finished: Callable[[VideoDecoder | SegmentDecoder, int], None] = lambda *_: None
    #: Parallel decoders for a video that splits into independent chunks (1: never).
    lanes: int = 1
    #: How many chunks the lanes decoded (0: one decoder took the whole video).
    chunks_decoded: int = field(init=False, default=0)
    _queue: queue.Queue[object] = field(init=False)
    _stop: threading.Event = field(init=False, default_factory=threading.Event)
    _pool: ThreadPoolExecutor = field(init=False)
    #: Frames handed to the pool and not finished: lanes must not pile decoded pictures there.
    _in_pool: threading.Semaphore = field(init=False)
    _thread: threading.Thread = field(init=False)
    _done: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self._queue = queue.Queue(maxsize=self.max_buffered_frames)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="frame-worker")
        self._in_pool = threading.Semaphore(max(self.max_buffered_frames, 2 * self.workers))
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
            self.on_finished(decoder, self.chunks_decoded)

    def _feed_frames(self, decoder: VideoDecoder | SegmentDecoder) -> None:
        chunks = decoder.chunks(self.lanes)
        if not chunks or not isinstance(decoder, VideoDecoder):
            frames = decoder.frames()
        elif (given := self._feed_chunks(decoder, chunks)) is not None:
            frames = decoder.resume_in_full(after=given)  # the plan broke in a lane
        else:
            return
        for index, frame in frames:
            if self._stop.is_set():
                return
            future = self._handle(decoder, index, frame)
            if future is not None and not self._put(future):
                return

    def _feed_chunks(self, decoder: VideoDecoder, chunks: tuple[Chunk, ...]) -> int | None:
        """Decode the chunks in lanes; ``None`` when done, else the last index passed on before
        the plan broke (the rest is then decoded in full)."""
        lanes: ChunkLanes[Future[ExtractedFrame]] = ChunkLanes(
            decoder.chunk_decoder,
            chunks,
            lanes=self.lanes,
            handle=lambda index, frame: self._handle(decoder, index, frame),
            stop=self._stop,
            per_chunk=_PER_CHUNK,
        )
        given = -1
        try:
            for index, future in lanes.results():
                given = index
                if not self._put(future):
                    return None
        except PlanBroken:
            return given
        finally:
            lanes.close()
        if not self._stop.is_set():
            self.chunks_decoded = len(chunks)
            decoder.finish_chunks(lanes.decoders)
        return None

    def _handle(
        self, decoder: VideoDecoder | SegmentDecoder, index: int, frame: VideoFrame
    ) -> Future[ExtractedFrame] | None:
        """Check a decoded frame; hand it to the pool if the sampling keeps it."""
        timestamp_ms = decoder.timestamp_ms(frame, index)
        # Every decoded frame, selected or not: a stream may grow its pictures mid-way.
        decoder.check_frame(frame, index, timestamp_ms)
        if not self.selects(index):
            return None
        job = FrameJob(index, timestamp_ms, decoder.rotation, frame)
        while not self._in_pool.acquire(timeout=_POLL_S):
            if self._stop.is_set():
                return None
        future = self._pool.submit(self.finish, job)
        future.add_done_callback(lambda _: self._in_pool.release())
        return future

    def _put(self, item: object) -> bool:
        # Blocking here is the backpressure that bounds memory; the stop flag keeps it interruptible
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
            except queue.Full:
                continue
            return True
        return False
