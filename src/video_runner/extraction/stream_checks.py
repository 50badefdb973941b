"""What a decoded video stream must satisfy: its header's promises and the limits, checked on the
header before anything is decoded, on every decoded frame, and once the stream has ended (the
completeness checks that refuse a truncated file). :class:`VideoDecoder` is such a stream."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import TYPE_CHECKING

import av

from video_runner.domain.video import VideoInfo
from video_runner.errors import ErrorCode, InvalidVideo
from video_runner.extraction.container import check_pixels, ms_of

if TYPE_CHECKING:
    from av.container import InputContainer
    from av.video.frame import VideoFrame
    from av.video.stream import VideoStream

    from video_runner.domain.params import VideoLimits

# A truncation the decoder cannot see: the last frame ends this long before the declared end.
_MAX_MISSING_TAIL_MS = 1000


class StreamChecks:
    """The checks of one video stream; the decoder fills the counts they read."""

    container: InputContainer
    stream: VideoStream
    limits: VideoLimits
    sampled_every: int
    declared_frames: int | None
    stream_duration_ms: int | None
    fps: float
    rotation: int
    start_pts: int | None
    #: Frames decoded, packets kept from the decoder (read, so counted as frames) and packets
    #: the demuxer marked to discard; the latest presentation time seen, in ms.
    decoded: int
    dropped: int
    discarded_packets: int
    last_timestamp_ms: int

    def _reset_counts(self) -> None:
        self.decoded = 0
        self.discarded_packets = 0
        self.dropped = 0
        self.last_timestamp_ms = 0

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
        check_pixels(frame.width, frame.height, self.limits)
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

    def _check_header(self) -> None:
        codec = self.stream.codec_context
        check_pixels(codec.width, codec.height, self.limits)
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
        return ms_of(self.container.duration, Fraction(1, av.time_base))

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
