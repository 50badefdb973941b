"""``video-runner process VIDEO``: the final JSON for one local file, with no servers."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from video_runner import bootstrap
from video_runner.domain.ids import is_valid_id
from video_runner.domain.tracks import wants_tracks
from video_runner.entrypoints.option_args import add_option_arguments, options_of
from video_runner.errors import PermanentError
from video_runner.services.inference import BatchingDetector
from video_runner.services.local_pipeline import process_locally
from video_runner.settings import load_settings


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "process", help="extract, detect and merge one local video in this process (no servers)"
    )
    parser.add_argument("video", type=Path)
    parser.add_argument("--out", type=Path, help="write the JSON here instead of stdout")
    parser.add_argument("--event-id", help="the event_id written in the JSON (default: file stem)")
    add_option_arguments(parser)
    parser.add_argument(
        "--annotate", type=Path, help="also write an H.264 video of the frames with boxes drawn"
    )
    parser.set_defaults(handler=_process)


def _process(args: argparse.Namespace) -> int:
    if not args.video.is_file():
        raise PermanentError(f"{args.video}: no such file")
    options = options_of(args)
    settings = load_settings()
    tracked = wants_tracks(options.as_document(), settings.track_default)
    event_id = args.event_id or (args.video.stem if is_valid_id(args.video.stem) else "local")
    batching = BatchingDetector(
        bootstrap.detector(settings), batch_size=settings.inference_batch_size
    )

    async def run() -> dict[str, object]:
        try:
            return await process_locally(
                args.video,
                event_id=event_id,
                frames=bootstrap.frame_source(settings),
                detector=batching,
                sampling=settings.sampling,
                preprocessing=settings.preprocessing,
                options=options,
                trackers=bootstrap.trackers(settings) if tracked else None,
            )
        finally:
            await batching.close()

    document = asyncio.run(run())
    text = json.dumps(document, ensure_ascii=False)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    else:
        sys.stdout.write(text + "\n")
    if args.annotate:
        from video_runner.entrypoints.render_command import annotate_local

        plan = options.sampling(settings.sampling.every_n)
        annotate_local(settings, args.video, document, args.annotate, plan)
    return 0
