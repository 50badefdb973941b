"""A ready event's final JSON read as a stream: frame by frame, never whole in memory.

The final JSON of a three-hour video holds 54,000 frames (60 MB and more), so the readers that
only need its frames in order (JSON Lines, a re-run's list of stored frames) or its last field
(``tracks``) read the S3 object a piece at a time (``ports.ObjectStream``) through an
incremental parser (ijson's C backend, docs/decisions/0014): what is in memory is one piece of
the object and the items parsed from it, whatever the result's length.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import ijson

from video_runner.domain.exports import frame_line
from video_runner.domain.status import Status
from video_runner.errors import ErrorCode, PermanentError
from video_runner.ports import ObjectStream


def result_location(document: Mapping[str, Any]) -> tuple[str, str]:
    """Bucket and key of a ``ready`` event's final JSON (``output_s3``)."""
    if document.get("status") != Status.READY:
        raise PermanentError(f"event {document.get('_id')} is {document.get('status')}, not ready")
    location = str(document.get("output_s3") or "").removeprefix("s3://")
    bucket, _, key = location.partition("/")
    if not bucket or not key:
        raise PermanentError(
            f"event {document.get('_id')} has no output_s3", code=ErrorCode.MISSING_OBJECT
        )
    return bucket, key


async def stream_items(
    objects: ObjectStream, bucket: str, key: str, prefix: str
) -> AsyncIterator[dict[str, Any]]:
    """The elements of the array at ``prefix`` (ijson's path: ``frames.item``), in order.

    Numbers come as ``int`` and ``float``, as ``json.loads`` gives them.
    """
    found = ijson.sendable_list()
    parser = ijson.items_coro(found, prefix, use_float=True)
    try:
        async for piece in objects.stream(bucket, key):
            parser.send(piece)
            for item in found:
                yield item
            del found[:]
    except ijson.JSONError as exc:
        raise PermanentError(f"s3://{bucket}/{key} is not valid JSON: {exc}") from exc
    try:
        parser.close()
    except ijson.IncompleteJSONError as exc:
        raise PermanentError(f"s3://{bucket}/{key} ends early: {exc}") from exc
    for item in found:
        yield item


async def stream_frames(
    objects: ObjectStream, document: Mapping[str, Any]
) -> AsyncIterator[dict[str, Any]]:
    """The ``frames`` of a ready event's final JSON, one at a time, in frame order."""
    bucket, key = result_location(document)
    async for frame in stream_items(objects, bucket, key, "frames.item"):
        yield frame


async def stream_jsonl(objects: ObjectStream, document: Mapping[str, Any]) -> AsyncIterator[str]:
    """The final JSON as JSON Lines: one line per frame (frame id, timestamp, objects)."""
    async for frame in stream_frames(objects, document):
        yield frame_line(frame)
