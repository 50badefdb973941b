"""``video-runner extract VIDEO --out DIR``: sampled, preprocessed JPEG frames and a manifest.

Needs no server: it is the extraction core on a local file, for debugging and benchmarks.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from video_runner import bootstrap
from video_runner.domain.params import Preprocessing, Sampling
from video_runner.errors import InvalidVideo
from video_runner.settings import load_settings

if TYPE_CHECKING:
    import argparse

EXIT_INVALID_VIDEO = 1
EXIT_BAD_ARGUMENTS = 2


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``extract`` on the CLI's subparsers."""
    parser = subparsers.add_parser(
        "extract",
        help="write a video's sampled, preprocessed frames as JPEG files plus manifest.json",
    )
    parser.add_argument("video", type=Path, help="a local video file")
    parser.add_argument("--out", type=Path, required=True, help="output directory (created)")
    parser.add_argument("--every", type=int, default=None, help="keep every N-th frame")
    parser.add_argument("--quality", type=int, default=None, help="JPEG quality, 1..100")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Extract; on a bad input or argument print one line to stderr and return non-zero."""
    try:
        manifest = extract_to_directory(
            args.video, args.out, every=args.every, quality=args.quality
        )
    except InvalidVideo as error:
        sys.stderr.write(f"video-runner extract: invalid video ({error.code}): {error}\n")
        return EXIT_INVALID_VIDEO
    except (ValueError, OSError) as error:
        sys.stderr.write(f"video-runner extract: {error}\n")
        return EXIT_BAD_ARGUMENTS
    sys.stdout.write(f"{len(manifest['frames'])} frames written to {args.out}\n")
    return 0


def extract_to_directory(
    video: Path, out: Path, *, every: int | None = None, quality: int | None = None
) -> dict[str, Any]:
    """Write ``out/{frame_id}.jpg`` and ``out/manifest.json``; return the manifest."""
    settings = load_settings()
    sampling = Sampling(every_n=settings.frame_every_n if every is None else every)
    base = settings.preprocessing
    preprocessing = Preprocessing(
        blur_ksize=base.blur_ksize,
        alpha=base.alpha,
        beta=base.beta,
        jpeg_quality=base.jpeg_quality if quality is None else quality,
    )
    source = bootstrap.frame_source(settings, sampling=sampling, preprocessing=preprocessing)
    info = source.probe(video)
    out.mkdir(parents=True, exist_ok=True)
    frames = []
    for frame in source.iter_frames(video):
        (out / f"{frame.frame_id}.jpg").write_bytes(frame.jpeg)
        frames.append(
            {
                "frame_id": frame.frame_id,
                "timestamp_ms": frame.timestamp_ms,
                "width": frame.width,
                "height": frame.height,
                "bytes": len(frame.jpeg),
            }
        )
    video_info = info.as_dict()
    manifest: dict[str, Any] = {
        "source": str(video),
        "video": {key: video_info[key] for key in _VIDEO_KEYS},
        "sampling": sampling.as_dict(),
        "preprocessing": preprocessing.as_dict(),
        "frames": frames,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


_VIDEO_KEYS = ("width", "height", "fps", "frame_count", "duration_ms", "rotation")
