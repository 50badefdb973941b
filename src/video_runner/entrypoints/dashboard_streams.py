"""The parts of the dashboard that read a ready video's final JSON as a stream: its tracks (the
timeline's lanes) and its JSON Lines export, written to the client as the lines are read."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from video_runner.domain.exports import FORMATS
from video_runner.domain.tracks import track_rows
from video_runner.errors import PermanentError
from video_runner.services.result_stream import stream_jsonl
from video_runner.services.track_reads import TrackReader

TRACKS_KEY = web.AppKey("track_reader", TrackReader)
#: Tracks drawn on a video's timeline (the longest ones); the others are "N more tracks".
TRACK_ROWS = 50


async def track_lanes(app: web.Application, document: Mapping[str, Any]) -> dict[str, Any]:
    """What the video page shows of its tracks (none when it has none, or the app reads no
    streams), and whether it offers the JSON Lines export."""
    reader = app.get(TRACKS_KEY)
    tracks = [] if reader is None else await reader.tracks(document)
    span = (document.get("video") or {}).get("frame_count")
    return {
        "tracks": track_rows(tracks, span, TRACK_ROWS),
        "more_tracks": max(len(tracks) - TRACK_ROWS, 0),
        "jsonl": reader is not None,
    }


async def jsonl_response(request: web.Request, document: Mapping[str, Any]) -> web.StreamResponse:
    """A ready video's frames as JSON Lines, each written as soon as it is read from S3."""
    lines = stream_jsonl(request.app[TRACKS_KEY].objects, document)
    try:
        first = await anext(lines, "")  # a missing object is a 404, before any byte is sent
    except PermanentError as exc:
        raise web.HTTPNotFound(text=str(exc)) from exc
    response = web.StreamResponse(headers={"Content-Type": FORMATS["jsonl"]})
    await response.prepare(request)
    await response.write(first.encode())
    async for line in lines:
        await response.write(line.encode())
    await response.write_eof()
    return response
