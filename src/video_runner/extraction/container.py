"""Opening a video file for decoding: refusals by size and format, its video stream, and the
small conversions the decoder shares (pixel limits, timestamps in ms, the reorder delay).

The pixel limit is enforced twice: by FFmpeg itself, before a decoder allocates a picture
(``bound_decoder``: its ``max_pixels`` option, for every codec), so one huge picture in the
middle of a small stream never costs its size in memory; and exactly, on the header and on
every decoded frame (``check_pixels``)."""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING

import av
import av.error

from video_runner.domain.params import VideoLimits
from video_runner.errors import ErrorCode, InvalidVideo
from video_runner.extraction.range_reader import RangeReader

if TYPE_CHECKING:
    from pathlib import Path

    from av.container import InputContainer
    from av.video.stream import VideoStream

# Demuxers FFmpeg will happily open that do not hold a video: text art and still images.
_NOT_VIDEO_FORMATS = frozenset({"tty", "image2", "ico", "gif"})


def open_video(source: Path | RangeReader, limits: VideoLimits) -> InputContainer:
    """Open a local file, or a remote object through a :class:`RangeReader`, for decoding."""
    reader = source if isinstance(source, RangeReader) else None
    size = source.size if isinstance(source, RangeReader) else source.stat().st_size
    name = source.name
    if size == 0:
        raise InvalidVideo(f"{name} is an empty file", code=ErrorCode.EMPTY_FILE)
    if limits.max_bytes is not None and size > limits.max_bytes:
        raise InvalidVideo(
            f"{name} has {size} bytes, above the limit of {limits.max_bytes}",
            code=ErrorCode.FILE_TOO_LARGE,
        )
    if reader is not None:
        reader.seek(0)  # FFmpeg reads from where the file is: an earlier opening moved it
    try:
        container = av.open(reader if reader is not None else str(source), mode="r")
    except av.error.FFmpegError as error:
        if looks_like_a_container(source):
            raise InvalidVideo(
                f"{name} is a damaged video container: {error}", code=ErrorCode.CORRUPT
            ) from error
        raise InvalidVideo(f"{name} is not a video: {error}", code=ErrorCode.NOT_A_VIDEO) from error
    format_name = container.format.name
    if format_name in _NOT_VIDEO_FORMATS or format_name.endswith("_pipe"):
        container.close()
        raise InvalidVideo(
            f"{name} is not a video (FFmpeg reads it as {format_name!r})",
            code=ErrorCode.NOT_A_VIDEO,
        )
    return container


def video_stream(container: InputContainer) -> VideoStream:
    for stream in container.streams.video:
        # Cover art of an audio file shows up as a one-picture video stream.
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    raise InvalidVideo("the file has no video stream", code=ErrorCode.NO_VIDEO_STREAM)


def reorder_delay(stream: VideoStream) -> int:
    """The decoder's output delay in frames (FFmpeg's ``has_b_frames``); 0 if PyAV hides it."""
    # PyAV's ``has_b_frames`` is a bool; the raw count is ``reorder_depth`` (not in the stubs).
    return int(getattr(stream.codec_context, "reorder_depth", 0))


#: The decoder's own bound is an eighth above ``max_pixels``: FFmpeg checks the picture's
#: width rounded up to its stride alignment (up to 64 pixels), so a picture at the exact limit
#: must still be allocated; ``check_pixels`` then applies the exact limit to what was decoded.
_DECODER_PIXEL_SLACK = 8


def decoder_pixel_bound(max_pixels: int) -> int:
    """FFmpeg's ``max_pixels`` for a decoder whose pictures may hold ``max_pixels`` pixels."""
    return max_pixels + max_pixels // _DECODER_PIXEL_SLACK


def bound_decoder(stream: VideoStream, limits: VideoLimits) -> None:
    """Make the stream's decoder refuse, before allocating it, a picture far above the limit.

    Must run before the first packet is decoded: options are read when the codec context opens.
    """
    if limits.max_pixels is None:
        return
    codec = stream.codec_context
    codec.options = {**codec.options, "max_pixels": str(decoder_pixel_bound(limits.max_pixels))}


def decoding_failed(stream: VideoStream, limits: VideoLimits, what: str) -> InvalidVideo:
    """The refusal for an FFmpeg decoding error: ``frame_too_large`` if the decoder refused a
    picture above the limit (it keeps the size the stream announced), else ``corrupt``."""
    codec = stream.codec_context
    width, height = codec.width, codec.height
    if limits.max_pixels is not None and width * height > limits.max_pixels:
        return InvalidVideo(
            f"a picture of {width}x{height} exceeds the limit of {limits.max_pixels} pixels"
            " (refused before it was decoded)",
            code=ErrorCode.FRAME_TOO_LARGE,
        )
    return InvalidVideo(what, code=ErrorCode.CORRUPT)


def check_pixels(width: int, height: int, limits: VideoLimits) -> None:
    if limits.max_pixels is not None and width * height > limits.max_pixels:
        raise InvalidVideo(
            f"frames of {width}x{height} exceed the limit of {limits.max_pixels} pixels",
            code=ErrorCode.FRAME_TOO_LARGE,
        )


def ms_of(value: int | None, time_base: Fraction | None) -> int | None:
    if not value or time_base is None:
        return None
    return round(value * time_base * 1000)


def looks_like_a_container(source: Path | RangeReader) -> bool:
    """Whether the file starts like a known video container (so failing to open it is damage)."""
    if isinstance(source, RangeReader):
        head = source.read_at(0, 512)
    else:
        with source.open("rb") as file:
            head = file.read(512)
    return (
        head[4:8] in {b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"}
        or head.startswith((b"\x1a\x45\xdf\xa3", b"FLV", b"OggS", b"\x00\x00\x01\xba"))
        or (head.startswith(b"RIFF") and head[8:12] == b"AVI ")
        or (len(head) > 188 and head[0] == head[188] == 0x47)  # noqa: PLR2004 - MPEG-TS sync
    )
