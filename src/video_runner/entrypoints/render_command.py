"""``video-runner render EVENT_ID --out FILE``: an H.264 video of an event's annotated frames.

Also the ``--annotate FILE`` of ``video-runner process``, which renders the frames it has just
extracted, with no server. Either way the video runs at the sampling rate (source fps over
``every_n``), so it lasts as long as the source, and a progress bar shows on a terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from video_runner import bootstrap
from video_runner.domain.annotate import sampled_rate
from video_runner.domain.ids import is_valid_id
from video_runner.domain.sampling import SamplingPlan
from video_runner.errors import InvalidMessage, PermanentError
from video_runner.services.detection_reads import DetectionReader
from video_runner.services.render import render_annotated, stored_jpegs
from video_runner.settings import Settings, load_settings


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "render", help="write an H.264 video of an event's sampled frames with boxes drawn"
    )
    parser.add_argument("event_id")
    parser.add_argument("--out", type=Path, required=True, help="the video file (.mp4)")
    parser.set_defaults(handler=_render)


def _render(args: argparse.Namespace) -> int:
    if not is_valid_id(args.event_id):
        raise InvalidMessage(f"{args.event_id!r} is not a valid event id")
    frames = asyncio.run(render_event(load_settings(), args.event_id, args.out))
    print(f"{args.out}: {frames} frames", file=sys.stderr)
    return 0


async def render_event(settings: Settings, event_id: str, out: Path) -> int:
    """Render an event (ready: from its final JSON; otherwise what is stored so far)."""
    store = bootstrap.prediction_store(settings)
    objects = bootstrap.object_store(settings)
    try:
        reader = DetectionReader(store, objects, settings.bucket_frames)
        document = await reader.event(event_id)
        if document is None:
            raise PermanentError(f"unknown event {event_id}")
        frames = await reader.frames(document)
        if not frames:
            raise PermanentError(f"event {event_id} ({document['status']}) has no frames yet")
        detections = {frame.frame_id: frame.objects for frame in frames}
        ids = [frame.frame_id for frame in frames]
        return await _write(
            document, out, len(ids), lambda: stored_jpegs(reader, event_id, ids), detections
        )
    finally:
        await store.close()
        objects.close()


def annotate_local(
    settings: Settings,
    video: Path,
    result: Mapping[str, Any],
    out: Path,
    plan: SamplingPlan | None = None,
) -> int:
    """Render the final JSON ``result`` of ``process`` over a fresh extraction of ``video``.

    Extraction is deterministic, so extracting again with the same sampling ``plan`` (the one
    the run's options made) gives the very frames the detector saw; only the frames the JSON
    lists are drawn, so the video holds exactly its frames.
    """
    detections = {int(f["frame_id"]): f["objects"] for f in result.get("frames") or []}

    async def jpegs() -> AsyncIterator[tuple[int, bytes]]:
        source = bootstrap.frame_source(settings)
        async with contextlib.aclosing(source.extract(video, plan)) as stream:
            async for frame in stream:
                if frame.frame_id in detections:
                    yield frame.frame_id, frame.jpeg

    return asyncio.run(_write(result, out, len(detections), jpegs, detections))


async def _write(
    document: Mapping[str, Any],
    out: Path,
    total: int,
    jpegs: Callable[[], AsyncIterator[tuple[int, bytes]]],
    detections: Mapping[int, Any],
) -> int:
    video = document.get("video") or {}
    rate = sampled_rate(video.get("fps"), (document.get("sampling") or {}).get("every_n"))
    with bootstrap.video_writer(out, rate) as writer, _progress_bar(total, out.name) as advance:
        return await render_annotated(jpegs(), detections, writer, on_frame=advance)


@contextlib.contextmanager
def _progress_bar(total: int, name: str) -> Iterator[Callable[[], None]]:
    """A rich progress bar on stderr when it is a terminal; nothing in logs and pipes."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    console = Console(stderr=True)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
        transient=False,
    ) as progress:
        task = progress.add_task(f"rendering {name}", total=total)
        yield lambda: progress.advance(task)
