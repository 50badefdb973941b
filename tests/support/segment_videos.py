"""The kinds of video segments must handle, made once per test module: every codec, container
and stream shape the extractor meets, with a keyframe every ``gop`` pictures so that a few
seconds cut into several segments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from support.videos import make_ffmpeg_video, make_video, real_video

#: What is cut into segments (the rest is decoded whole, with a reason).
NOT_CUT = frozenset({"h264-matroska", "mjpeg"})


def _cases(gop: int) -> dict[str, tuple[str, dict[str, Any]]]:
    x264 = ("-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", str(gop))
    x265 = (
        *("-c:v", "libx265", "-pix_fmt", "yuv420p", "-x265-params"),
        f"log-level=error:keyint={gop}:min-keyint={gop}:open-gop=0:scenecut=0",
    )
    vfr = ("-vf", "setpts='N/25/TB+if(gt(N,40),0.37/TB,0)+if(gt(N,80),0.8/TB,0)'")
    return {
        "h264-b-frames": ("b.mp4", {"output_args": x264}),
        "h264-no-b-frames": ("nob.mp4", {"output_args": (*x264, "-bf", "0")}),
        "h264-vfr": ("vfr.mp4", {"output_args": (*x264, *vfr, "-fps_mode", "vfr")}),
        "h264-audio": ("a.mp4", {"output_args": x264, "with_audio": True}),
        "h264-odd-size-444": (
            "odd.mp4",
            {"size": "63x47", "output_args": (*x264[:2], "-pix_fmt", "yuv444p", *x264[4:])},
        ),
        "hevc-closed-gops": ("h.mp4", {"output_args": x265}),
        "h264-matroska": ("b.mkv", {"output_args": x264}),
        "mjpeg": ("m.avi", {"output_args": ("-c:v", "mjpeg", "-pix_fmt", "yuvj420p")}),
    }


def segment_videos(directory: Path, frames: int = 120, gop: int = 12) -> dict[str, Path]:
    """Every kind, ``frames`` pictures at 25 fps, plus a rotated one and a real video."""
    paths = {
        name: make_ffmpeg_video(directory / file, frames, **kwargs)
        for name, (file, kwargs) in _cases(gop).items()
    }
    paths["pyav-rotated"] = make_video(directory / "r.mp4", frames, rotation_ccw=90, gop=gop)
    paths["bikes"] = real_video("bikes.mp4")
    return paths
