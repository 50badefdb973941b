"""``video-runner reinfer EVENT_ID [--detector KIND]``: a new version of a ready event's result,
from the frames already in S3 (nothing is downloaded or decoded again)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid

from video_runner import bootstrap
from video_runner.adapters.detectors import DETECTOR_KINDS
from video_runner.domain.ids import is_valid_id
from video_runner.errors import InvalidMessage
from video_runner.services import client_actions as client
from video_runner.services.rerun_client import request_rerun, version_of_request
from video_runner.settings import load_settings

EXIT_FAILED = 3


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "reinfer", help="run a ready event's stored frames again, with another detector"
    )
    parser.add_argument("event_id")
    parser.add_argument(
        "--detector",
        choices=DETECTOR_KINDS,
        help="the detector kind to run (default: the inference workers' own DETECTOR)",
    )
    parser.add_argument(
        "--request-id",
        help="this request's id (default: a new one); sending the same one again makes no "
        "other version",
    )
    parser.add_argument(
        "--wait", action="store_true", help="wait until the new version ends, print its JSON"
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait (600)")
    parser.set_defaults(handler=_reinfer)


def _reinfer(args: argparse.Namespace) -> int:
    request_id = args.request_id or uuid.uuid4().hex
    for value in (args.event_id, request_id):
        if not is_valid_id(value):
            raise InvalidMessage(f"{value!r} is not a valid id")
    return asyncio.run(_run(args.event_id, request_id, args.detector, args))


async def _run(
    event_id: str, request_id: str, detector: str | None, args: argparse.Namespace
) -> int:
    settings = load_settings()
    publisher = bootstrap.publisher(settings, "reinfer")
    await publisher.start()
    try:
        await request_rerun(publisher, settings.topic_outbox_events, event_id, request_id, detector)
    finally:
        await publisher.stop()
    print(request_id, file=sys.stderr)
    store = bootstrap.prediction_store(settings)
    try:
        version_id = await version_of_request(
            store, event_id, request_id, timeout_s=args.timeout if args.wait else 30.0
        )
        print(version_id, flush=True)
        if not args.wait:
            return 0
        document = await client.wait_until_finished(store, version_id, timeout_s=args.timeout)
        if document["status"] == "failed":
            error = document.get("error") or {}
            print(
                f"video-runner reinfer: {version_id} failed: "
                f"{error.get('code')}: {error.get('message')}",
                file=sys.stderr,
            )
            return EXIT_FAILED
        objects = bootstrap.object_store(settings)
        sys.stdout.write((await client.read_result(objects, document)).decode("utf-8") + "\n")
    finally:
        await store.close()
    return 0
