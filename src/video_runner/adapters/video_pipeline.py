"""The extraction pipeline: a decoder thread feeding a worker pool through a bounded, ordered
queue of futures, so memory stays bounded whatever the length of the video."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from video_runner.adapters.video_decoder import VideoDecoder
from video_runner.domain.video import ExtractedFrame

if TYPE_CHECKING:
    from av.video.frame import VideoFrame

_POLL_S = 0.1


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

    decoder: VideoDecoder
    finish: Callable[[FrameJob], ExtractedFrame]
    #: Whether the frame at a presentation index is kept (the video's sampling plan).
    selects: Callable[[int], bool]
    workers: int
    max_buffered_frames: int
    #: Told about the decoder once it has finished (how it decoded, what it dropped).
    on_finished: Callable[[VideoDecoder], None] = lambda _: None
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

    def _feed_frames(self, decoder: VideoDecoder) -> None:
        for index, frame in decoder.frames():
            if self._stop.is_set():
                return
            timestamp_ms = decoder.timestamp_ms(frame, index)
            # Every decoded frame, selected or not: a stream may grow its pictures mid-way.
            decoder.check_frame(frame, index, timestamp_ms)
            if not self.selects(index):
                continue
            job = FrameJob(index, timestamp_ms, decoder.rotation, frame)
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
