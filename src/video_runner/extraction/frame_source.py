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
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import TYPE_CHECKING, cast

import cv2

from video_runner.domain.params import Preprocessing, Sampling, VideoLimits
from video_runner.domain.preprocess import Image, encode_jpeg
from video_runner.domain.sampling import SamplingPlan
from video_runner.domain.video import ExtractedFrame, VideoInfo
from video_runner.extraction.container import open_video
from video_runner.extraction.decoder import VideoDecoder
from video_runner.extraction.pipeline import FrameJob, FramePipeline
from video_runner.extraction.preprocess_buffers import PreprocessBuffers
from video_runner.extraction.range_reader import RangeReader
from video_runner.extraction.segment_decoder import SegmentDecoder
from video_runner.extraction.segment_planning import plan_segments

if TYPE_CHECKING:
    from pathlib import Path

    from video_runner.domain.segments import Planned, Segment
    from video_runner.ports import Fetch

#: Called with ``(frame_id, image)`` just before JPEG encoding: lets tests compare exact pixels.
#: The array is the worker thread's and is overwritten by its next frame: copy it to keep it.
ImageHook = Callable[[int, Image], None]


_ROTATE_CLOCKWISE = {
    90: cv2.ROTATE_90_CLOCKWISE,
    180: cv2.ROTATE_180,
    270: cv2.ROTATE_90_COUNTERCLOCKWISE,
}


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
        lanes: int | None = None,
    ) -> None:
        if workers < 1 or max_buffered_frames < 1:
            raise ValueError("workers and max_buffered_frames must be at least 1")
        self.plan = SamplingPlan.of(sampling or Sampling())
        self.preprocessing = preprocessing or Preprocessing()
        self.limits = limits or VideoLimits()
        self.workers = workers
        #: Parallel single-threaded decoders for a video of independent chunks (1: never split).
        self.lanes = workers if lanes is None else lanes
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
        #: How many independent chunks lanes decoded in parallel (0: one decoder, frame threads).
        self.last_chunks = 0

    def probe(self, path: Path) -> VideoInfo:
        """Validate the file and read its properties (decodes its first frame, nothing more)."""
        with open_video(path, self.limits) as container:
            return VideoDecoder(container, self.limits, sampled_every=self.plan.every_n or 1).info

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

    def extract(
        self, path: Path, plan: SamplingPlan | None = None
    ) -> AsyncGenerator[ExtractedFrame, None]:
        """Like :meth:`iter_frames`; blocking waits and CPU work stay off the event loop."""
        return self._run(lambda: self._start(path, plan))

    def plan_segments(
        self, fetch: Fetch, size: int, name: str, plan: SamplingPlan, seconds: float
    ) -> Planned:
        """Probe a remote video by ranged reads and cut it into segments (segment_planning)."""
        return plan_segments(RangeReader(fetch, size, name=name), self.limits, plan, seconds)

    def iter_segment(
        self, fetch: Fetch, size: int, name: str, segment: Segment, plan: SamplingPlan
    ) -> Iterator[ExtractedFrame]:
        """The sampled frames of one segment of a video read by ranged reads, in order."""
        pipeline = self._start_segment(RangeReader(fetch, size, name=name), segment, plan)
        try:
            while (frame := pipeline.next()) is not None:
                yield frame
        finally:
            pipeline.close()

    def extract_segment(
        self, fetch: Fetch, size: int, name: str, segment: Segment, plan: SamplingPlan
    ) -> AsyncGenerator[ExtractedFrame, None]:
        """Like :meth:`iter_segment`, off the event loop (the fetches too)."""
        reader = RangeReader(fetch, size, name=name)
        return self._run(lambda: self._start_segment(reader, segment, plan))

    async def _run(
        self, start: Callable[[], FramePipeline]
    ) -> AsyncGenerator[ExtractedFrame, None]:
        starting = asyncio.ensure_future(asyncio.to_thread(start))
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

    def _start(self, path: Path, plan: SamplingPlan | None = None) -> FramePipeline:
        plan = plan or self.plan
        container = open_video(path, self.limits)
        try:
            if plan.is_time_based:
                decoder = VideoDecoder(
                    container, self.limits, path=path, sampling=plan, planned=not self.decode_all
                )
            else:
                every_n = 1 if self.decode_all else plan.every_n or 1
                decoder = VideoDecoder(
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
        return FramePipeline(
            decoder,
            self._finish,
            selects,
            self.workers,
            self.max_buffered_frames,
            self._record,
            lanes=self.lanes,
        )

    def _start_segment(
        self, reader: RangeReader, segment: Segment, plan: SamplingPlan
    ) -> FramePipeline:
        container = open_video(reader, self.limits)
        try:
            decoder = SegmentDecoder(container, self.limits, segment, plan.rough_every(0.0))
        except BaseException:
            container.close()
            raise
        return FramePipeline(
            decoder,
            self._finish,
            segment.keeps,
            self.workers,
            self.max_buffered_frames,
            self._record,
            lanes=1,
        )

    def _record(self, decoder: VideoDecoder | SegmentDecoder, chunks: int = 0) -> None:
        self.last_mode = "selective" if decoder.selective else "full"
        self.last_dropped = decoder.dropped
        self.last_packets = decoder.packets
        self.last_chunks = chunks

    def _finish(self, job: FrameJob) -> ExtractedFrame:
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


def _close_when_started(starting: asyncio.Future[FramePipeline]) -> None:
    if not starting.cancelled() and starting.exception() is None:
        asyncio.get_running_loop().run_in_executor(None, starting.result().close)
