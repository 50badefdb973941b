"""``submit``, ``status`` and ``result``: talk to a running system from a terminal or a script."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from video_runner import bootstrap
from video_runner.domain.exports import FORMATS, export
from video_runner.domain.ids import is_valid_id
from video_runner.domain.progress import progress_percent, status_view
from video_runner.domain.versions import MAX_VERSIONS, version_event_id
from video_runner.entrypoints.option_args import add_option_arguments, options_of
from video_runner.errors import InvalidMessage, PermanentError, RetriableError
from video_runner.ports import NoticeFeed, ObjectStore
from video_runner.services import client_actions as client
from video_runner.services.result_stream import stream_jsonl
from video_runner.settings import Settings, load_settings

EXIT_FAILED = 3


def add_parsers(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    submit = subparsers.add_parser("submit", help="upload a video and queue it for detection")
    submit.add_argument("video", type=Path)
    submit.add_argument(
        "--wait",
        action="store_true",
        help="follow prediction_events until the event ends and print its JSON (polls the "
        "store if the topic cannot be followed)",
    )
    submit.add_argument("--timeout", type=float, default=600.0, help="seconds to wait (600)")
    add_option_arguments(submit, callback_url=True)
    submit.set_defaults(handler=_submit)
    status = subparsers.add_parser("status", help="print an event's status and progress as JSON")
    status.add_argument("event_id")
    status.set_defaults(handler=_status)
    result = subparsers.add_parser(
        "result", help="print an event's final JSON, or its COCO or CSV export"
    )
    result.add_argument("event_id")
    result.add_argument(
        "--format",
        choices=sorted(FORMATS),
        default="json",
        help="json (the final JSON as stored), coco (COCO detection format), csv (one row "
        "per object) or jsonl (one line per frame, streamed)",
    )
    result.add_argument(
        "--version",
        type=int,
        default=1,
        metavar="N",
        help="the N-th version of the result (1: the first run; 2, 3...: re-runs, see reinfer)",
    )
    result.set_defaults(handler=_result)


def _submit(args: argparse.Namespace) -> int:
    if not args.video.is_file():
        raise PermanentError(f"{args.video}: no such file")
    options_of(args)  # refused here, before any upload, exactly as the runner would refuse it
    return asyncio.run(_submit_async(args))


async def _submit_async(args: argparse.Namespace) -> int:
    settings = load_settings()
    objects = bootstrap.object_store(settings)
    # Follow the notices from before the submission, so the event's own cannot be missed.
    feed = await _notice_feed(settings) if args.wait else None
    try:
        publisher = bootstrap.publisher(settings, "submit")
        await publisher.start()
        try:
            event_id = await client.submit(
                objects,
                publisher,
                bucket=settings.bucket_videos,
                topic=settings.topic_outbox_events,
                video=args.video,
                options=options_of(args).as_document(),
            )
        finally:
            await publisher.stop()
        print(event_id, flush=True)
        if not args.wait:
            return 0
        return await _wait(settings, objects, feed, event_id, args.timeout)
    finally:
        if feed is not None:
            await feed.stop()


async def _notice_feed(settings: Settings) -> NoticeFeed | None:
    """A follower of ``prediction_events`` from its end now; None (poll instead) if it fails."""
    feed = bootstrap.notice_feed(settings, "submit")
    try:
        await feed.start(settings.topic_prediction_events)
    except RetriableError as exc:
        print(
            f"video-runner submit: cannot follow {settings.topic_prediction_events} ({exc}); "
            "polling the store instead",
            file=sys.stderr,
        )
        return None
    return feed


async def _wait(
    settings: Settings,
    objects: ObjectStore,
    feed: NoticeFeed | None,
    event_id: str,
    timeout_s: float,
) -> int:
    store = bootstrap.prediction_store(settings)
    try:
        bar = _ProgressBar() if sys.stderr.isatty() else None
        progress = bar.update if bar else None
        if feed is None:
            document = await client.wait_until_finished(
                store, event_id, timeout_s=timeout_s, on_progress=progress
            )
        else:
            document = await client.wait_for_notice(
                feed, store, event_id, timeout_s=timeout_s, on_progress=progress
            )
        if bar:
            bar.close()
        if document["status"] == "failed":
            error = document.get("error") or {}
            print(
                f"video-runner submit: {event_id} failed: "
                f"{error.get('code')}: {error.get('message')}",
                file=sys.stderr,
            )
            return EXIT_FAILED
        sys.stdout.write((await client.read_result(objects, document)).decode("utf-8") + "\n")
    finally:
        await store.close()
    return 0


def _checked(event_id: str) -> str:
    if not is_valid_id(event_id):
        raise InvalidMessage(f"{event_id!r} is not a valid event id")
    return event_id


def _status(args: argparse.Namespace) -> int:
    return asyncio.run(_status_async(_checked(args.event_id)))


async def _document(settings: Settings, event_id: str) -> dict[str, Any]:
    store = bootstrap.prediction_store(settings)
    try:
        document = await client.status_of(store, event_id)
    finally:
        await store.close()
    if document is None:
        raise PermanentError(f"unknown event {event_id}")
    return document


async def _status_async(event_id: str) -> int:
    document = await _document(load_settings(), event_id)
    print(json.dumps(status_view(document), indent=2, default=str))
    return 0


def _result(args: argparse.Namespace) -> int:
    event_id = _checked(args.event_id)
    if args.version < 1 or args.version > MAX_VERSIONS:
        raise InvalidMessage(f"--version must be from 1 to {MAX_VERSIONS}")
    if args.version > 1:
        event_id = version_event_id(event_id, args.version)
    return asyncio.run(_result_async(event_id, args.format))


async def _result_async(event_id: str, fmt: str) -> int:
    settings = load_settings()
    document = await _document(settings, event_id)
    if fmt == "jsonl":
        # Streamed: a 54,000-frame result goes out line by line, never whole in memory.
        async for line in stream_jsonl(bootstrap.object_store(settings), document):
            sys.stdout.write(line)
        sys.stdout.flush()
        return 0
    data = await client.read_result(bootstrap.object_store(settings), document)
    text = export(data, fmt)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


class _ProgressBar:
    """One line on stderr, redrawn in place: status, a bar and the counts."""

    width = 30

    def __init__(self) -> None:
        self._last = ""

    def update(self, document: Mapping[str, Any] | None) -> None:
        if document is None:
            line = "queued      waiting for the runner..."
        else:
            percent = progress_percent(document)
            filled = int(self.width * percent / 100)
            line = (
                f"{document['status']:<11} [{'#' * filled}{'.' * (self.width - filled)}] "
                f"{percent:5.1f}%  published {document.get('frames_published') or 0}  "
                f"results {document.get('results_received') or 0}"
                f"/{document.get('total_frames') or '?'}"
            )
        if line != self._last:
            sys.stderr.write("\r" + line.ljust(len(self._last)))
            sys.stderr.flush()
            self._last = line

    def close(self) -> None:
        sys.stderr.write("\n")
