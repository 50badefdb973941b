"""The runner's read-only dashboard: the recent videos, one video, and its annotated frames.

Server-rendered HTML (Jinja2 templates in ``entrypoints/templates``) with a little plain
JavaScript that refreshes a page while something on it is in flight; without JavaScript a
``<noscript>`` refresh (or a reload) shows the same state. Everything is read through the
ports and ``services.detection_reads``; nothing here writes.

* ``GET /``: recent videos (status, progress, frames, duration, detections per class, errors)
* ``GET /videos/{event_id}``: one video (header, per-class timeline, grid of annotated frames)
* ``GET /videos/{event_id}/result.json``: the final JSON of a ready video; ``result.coco.json``
  and ``result.csv`` its COCO and CSV exports, ``result.jsonl`` its frames as JSON Lines
  (streamed from S3, never whole in memory)
* ``GET /predictions/{event_id}/frames/{frame_id}.jpg?annotated=1|0``: a frame, boxes drawn or
  as stored
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import jinja2
from aiohttp import web

from video_runner.domain.annotate import color_hex, draw_detections
from video_runner.domain.display_text import visible
from video_runner.domain.exports import FORMATS, export
from video_runner.domain.ids import is_valid_id
from video_runner.domain.preprocess import decode_jpeg, encode_jpeg
from video_runner.domain.progress import expected_frames, progress_percent
from video_runner.domain.status import Status
from video_runner.domain.versions import root_of
from video_runner.entrypoints.dashboard_streams import TRACKS_KEY, jsonl_response, track_lanes
from video_runner.entrypoints.timeline_svg import timeline_shades
from video_runner.errors import PermanentError, RetriableError
from video_runner.runtime import Service
from video_runner.services.detection_reads import DetectionReader, Summary
from video_runner.services.track_reads import TrackReader

READER_KEY = web.AppKey("detection_reader", DetectionReader)
#: Videos listed per status on ``/``, frames per page of a video's grid, classes named per
#: row of ``/`` (the summary names at most ``SUMMARY_CLASSES``; the rest are "N more").
PER_STATUS = 50
GRID_FRAMES = 60
ROW_CLASSES = 5
#: The highest ``?page=`` asked for: a page number is an index, not a place for big numbers.
MAX_PAGE = 1_000_000
REFRESH_S = 3
ANNOTATED_QUALITY = 90
_IN_FLIGHT = {Status.PROCESSING.value, Status.PREDICTABLE.value}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("video_runner.entrypoints", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
    enable_async=False,
    # Every shown value: control and bidi characters made visible, whatever template shows it.
    finalize=lambda value: visible(value) if isinstance(value, str) else value,
)
_templates.globals["color"] = color_hex
_templates.globals["shades"] = timeline_shades


def install(app: web.Application, service: Service) -> None:
    """Add the dashboard to the app of a process that serves one (the composition root gives
    the runner a reader unless DASHBOARD_ENABLED is false)."""
    if service.dashboard is not None:
        add_routes(app, service.dashboard, service.tracks)


def add_routes(
    app: web.Application, reader: DetectionReader, tracks: TrackReader | None = None
) -> None:
    """``tracks`` reads results as streams: the tracks timeline and the JSON Lines export."""
    app[READER_KEY] = reader
    if tracks is not None:
        app[TRACKS_KEY] = tracks
        app.router.add_get("/videos/{event_id}/result.jsonl", _guarded(result_jsonl))
    app.router.add_get("/", _guarded(index))
    app.router.add_get("/videos/{event_id}", _guarded(video))
    app.router.add_get("/videos/{event_id}/result.json", _guarded(result_json))
    app.router.add_get("/videos/{event_id}/result.coco.json", _guarded(result_json))
    app.router.add_get("/videos/{event_id}/result.csv", _guarded(result_json))
    # ASCII digits only (``\d`` takes any script's), and few enough for an int of the store.
    app.router.add_get("/predictions/{event_id}/frames/{frame_id:[0-9]{1,9}}.jpg", _guarded(frame))


def _guarded(handler: Handler) -> Handler:
    """A dependency that is down is a 503 with its reason, never a stack trace page."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        event_id = request.match_info.get("event_id")
        if event_id is not None and not is_valid_id(event_id):
            raise web.HTTPBadRequest(text="invalid event id")
        try:
            return await handler(request)
        except RetriableError as exc:
            raise web.HTTPServiceUnavailable(text=f"a dependency is unavailable: {exc}") from exc

    return guarded


async def index(request: web.Request) -> web.Response:
    reader = request.app[READER_KEY]
    documents = await reader.recent(PER_STATUS)
    summaries = await asyncio.gather(*(reader.summary(d) for d in documents))
    rows = [_row(d, s, ROW_CLASSES) for d, s in zip(documents, summaries, strict=True)]
    in_flight = any(row["status"] in _IN_FLIGHT for row in rows)
    return _page("index.html", in_flight, rows=rows)


async def video(request: web.Request) -> web.Response:
    reader = request.app[READER_KEY]
    document = await _known(reader, request.match_info["event_id"])
    summary = await reader.summary(document)
    pages = max(-(-len(summary.frame_ids) // GRID_FRAMES), 1)
    page = min(_page_number(request.query.get("page", "1")), pages) - 1
    shown = await reader.frames_page(document, page, GRID_FRAMES)
    return _page(
        "video.html",
        document["status"] in _IN_FLIGHT,
        v=_header(document, summary),
        timeline=summary.timeline,
        **await track_lanes(request.app, document),
        shown=shown,
        frame_count=len(summary.frame_ids),
        page=page + 1,
        pages=pages,
    )


def _page_number(text: str) -> int:
    """A 1-based ``?page=``: ASCII digits, at most ``MAX_PAGE``; anything else is a 400."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(MAX_PAGE)):
        raise web.HTTPBadRequest(text="page must be a number from 1")
    number = int(text)
    if not 1 <= number <= MAX_PAGE:
        raise web.HTTPBadRequest(text="page must be a number from 1")
    return number


async def _ready(request: web.Request) -> dict[str, Any]:
    document = await _known(request.app[READER_KEY], request.match_info["event_id"])
    if document["status"] != Status.READY.value:
        raise web.HTTPNotFound(text=f"event {document['_id']} is {document['status']}, not ready")
    return document


async def result_json(request: web.Request) -> web.Response:
    document = await _ready(request)
    try:
        data = await request.app[READER_KEY].final_json(document)
    except PermanentError as exc:
        raise web.HTTPNotFound(text=str(exc)) from exc
    # result.json, result.coco.json, result.csv: the format is the name's middle part.
    name = request.path.rsplit("/", 1)[-1]
    fmt = {"result.json": "json", "result.coco.json": "coco", "result.csv": "csv"}[name]
    return web.Response(text=export(data, fmt), content_type=FORMATS[fmt])


async def result_jsonl(request: web.Request) -> web.StreamResponse:
    return await jsonl_response(request, await _ready(request))


async def frame(request: web.Request) -> web.Response:
    reader = request.app[READER_KEY]
    event_id = request.match_info["event_id"]
    frame_id = int(request.match_info["frame_id"])
    document = await _known(reader, event_id)
    # A re-run's frames are its original's: nothing was extracted again.
    data = await reader.frame_jpeg(root_of(document), frame_id)
    if data is None:
        raise web.HTTPNotFound(text=f"no frame {frame_id} for event {event_id}")
    if request.query.get("annotated", "1").lower() not in {"0", "false", "no"}:
        objects = await reader.objects_of(document, frame_id)
        if objects:
            data = await asyncio.to_thread(_annotated, data, objects)
    # A ready event's frames and detections never change; an event in flight's still may.
    cache = "max-age=3600" if document["status"] == Status.READY.value else "no-cache"
    return web.Response(body=data, content_type="image/jpeg", headers={"Cache-Control": cache})


def _annotated(data: bytes, objects: list[dict[str, Any]]) -> bytes:
    return encode_jpeg(draw_detections(decode_jpeg(data), objects), ANNOTATED_QUALITY)


async def _known(reader: DetectionReader, event_id: str) -> dict[str, Any]:
    document = await reader.event(event_id)
    if document is None:
        raise web.HTTPNotFound(text=f"unknown event {event_id}")
    return document


def _page(template: str, in_flight: bool, **context: object) -> web.Response:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    text = _templates.get_template(template).render(
        in_flight=in_flight, refresh_s=REFRESH_S, now=now, **context
    )
    return web.Response(text=text, content_type="text/html", headers={"Cache-Control": "no-store"})


def _row(document: Mapping[str, Any], summary: Summary, named: int) -> dict[str, Any]:
    classes = dict(list(summary.classes.items())[:named])
    return {
        "event_id": document["_id"],
        "status": document["status"],
        "progress": progress_percent(document),
        "frames_done": int(document.get("results_received") or 0),
        "frames_total": _or_dash(expected_frames(document)),
        "failed_frames": int(document.get("failed_frames") or 0),
        "duration": _duration((document.get("video") or {}).get("duration_ms")),
        "classes": classes,
        "more_classes": summary.more_classes + len(summary.classes) - len(classes),
        "error": document.get("error"),
        "source": _source(document),
        "created": _when(document.get("created_at")),
    }


def _header(document: Mapping[str, Any], summary: Summary) -> dict[str, Any]:
    info = document.get("video") or {}
    every_n = (document.get("sampling") or {}).get("every_n")
    fps = info.get("fps")
    video = "not probed yet"
    if info:
        video = (
            f"{info.get('width')}x{info.get('height')} · {info.get('codec')} · "
            f"{fps:g} fps · {info.get('frame_count')} frames · "
            f"{_duration(info.get('duration_ms'))}"
            if fps
            else str(info)
        )
    source = document.get("source") or {}
    return {
        **_row(document, summary, len(summary.classes)),
        "size": _size(source.get("size_bytes")),
        "video": video,
        "sampling": f"every {every_n}th frame" if every_n else "unknown",
        "preprocessing": _pairs(document.get("preprocessing")),
        "options": _pairs(document.get("options")),
        "output_s3": document.get("output_s3"),
        "models": ", ".join(str(m) for m in document.get("models") or []),
    }


def _source(document: Mapping[str, Any]) -> str:
    source = document.get("source") or {}
    if "bucket" in source:
        return f"s3://{source['bucket']}/{source.get('object', '')}"
    return str(source.get("file") or source.get("object") or "")


def _pairs(value: object) -> str:
    if not isinstance(value, Mapping) or not value:
        return ""
    return ", ".join(f"{key} {item}" for key, item in value.items())


def _duration(ms: object) -> str:
    if not isinstance(ms, int | float):
        return "-"
    seconds = float(ms) / 1000
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)} min {rest:04.1f} s" if minutes else f"{rest:.1f} s"


def _size(size: object) -> str:
    if not isinstance(size, int):
        return ""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":  # noqa: PLR2004 - binary units
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _when(value: object) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if isinstance(value, datetime) else "-"


def _or_dash(value: int | None) -> str:
    return "?" if value is None else str(value)
