"""A ready result read as a stream: JSON Lines frame by frame, tracks from the JSON's end, and
the dashboard's JSON Lines export and tracks timeline."""

from __future__ import annotations

import json

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from support.fakes import FakeObjectStore, FakePredictionStore
from video_runner.domain.exports import export
from video_runner.domain.results import FrameResult, render_merged
from video_runner.domain.status import Status
from video_runner.entrypoints import dashboard
from video_runner.errors import PermanentError
from video_runner.services.detection_reads import DetectionReader
from video_runner.services.result_stream import result_location, stream_frames, stream_jsonl
from video_runner.services.track_reads import TrackReader

CAR = {"class": "car", "box": [1.0, 2.0, 30.5, 40.0], "conf": 0.5, "track_id": 1}
TRACKS = [
    {
        "track_id": 1,
        "class": "car",
        "first_frame_id": 0,
        "last_frame_id": 95,
        "first_ms": 0,
        "last_ms": 3800,
        "frames": 20,
        "best_conf": 0.5,
    }
]


def final_json(frames: int = 20) -> bytes:
    results = [
        FrameResult(
            frame_id=i * 5,
            timestamp_ms=i * 200,
            objects=[CAR] if i % 3 else [],
            error="bad_image: x" if i == 7 else None,
            model="m@1",
        )
        for i in range(frames)
    ]
    header = {"event_id": "ev-j", "video": {"frame_count": 100}}
    return "".join(render_merged(header, results, {"tracks": TRACKS})).encode()


async def ready(objects: FakeObjectStore, store: FakePredictionStore | None = None) -> dict:
    await objects.put_bytes("videos", "detection/ev-j.json", final_json(), "application/json")
    document = {
        "_id": "ev-j",
        "status": Status.READY.value,
        "output_s3": "s3://videos/detection/ev-j.json",
        "tracks": 1,
        "video": {"frame_count": 100},
    }
    if store is not None:
        store.put(
            "ev-j",
            Status.READY,
            **{k: v for k, v in document.items() if k not in {"_id", "status"}},
        )
    return document


async def test_json_lines_stream_one_line_per_frame_equal_to_the_whole_export():
    """Streamed lines are the in-memory export's, read in pieces of the object."""
    objects = FakeObjectStore()
    document = await ready(objects)
    lines = [line async for line in stream_jsonl(objects, document)]
    assert "".join(lines) == export(final_json(), "jsonl")
    assert len(lines) == 20
    first, failed = json.loads(lines[1]), json.loads(lines[7])
    assert first == {"frame_id": 5, "timestamp_ms": 200, "objects": [CAR]}
    assert failed["error"] == "bad_image: x"
    assert objects.streamed == [("videos", "detection/ev-j.json")]


async def test_stream_frames_reads_the_object_piece_by_piece_not_whole():
    """With pieces of 97 bytes, frames come out before the object has been read to its end."""
    objects = FakeObjectStore()
    document = await ready(objects)
    pieces = []
    original = objects.stream

    async def small(bucket, key):
        async for piece in original(bucket, key, piece=97):
            pieces.append(len(piece))
            yield piece

    objects.stream = small  # type: ignore[method-assign]
    seen_at = [(frame["frame_id"], len(pieces)) async for frame in stream_frames(objects, document)]
    assert seen_at[0][1] < len(pieces) / 4
    assert max(pieces) == 97


async def test_a_result_that_is_not_ready_or_broken_is_a_clear_error():
    """Not ready, no pointer, or a truncated object: a PermanentError saying which."""
    objects = FakeObjectStore()
    with pytest.raises(PermanentError, match="not ready"):
        result_location({"_id": "e", "status": "processing"})
    with pytest.raises(PermanentError, match="no output_s3"):
        result_location({"_id": "e", "status": "ready"})
    await objects.put_bytes("videos", "detection/ev-j.json", final_json()[:300], "x")
    document = {"_id": "ev-j", "status": "ready", "output_s3": "s3://videos/detection/ev-j.json"}
    with pytest.raises(PermanentError, match="ends early"):
        _ = [line async for line in stream_jsonl(objects, document)]


async def test_tracks_are_read_from_the_end_of_the_json_once_and_kept():
    """The tracks come from the object's end; a second read is served from memory."""
    objects = FakeObjectStore()
    document = await ready(objects)
    reader = TrackReader(objects)
    assert await reader.tracks(document) == TRACKS
    assert await reader.tracks(document) == TRACKS
    assert len(objects.streamed) == 1
    assert await reader.tracks({**document, "tracks": None}) == []


async def client_of(store, objects):
    app = web.Application()
    dashboard.add_routes(app, DetectionReader(store, objects, "frames"), TrackReader(objects))
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def test_the_dashboard_serves_json_lines_and_draws_the_tracks():
    """``result.jsonl`` streams the frames; the video page has a lane per track and the link."""
    store, objects = FakePredictionStore(), FakeObjectStore()
    await ready(objects, store)
    client = await client_of(store, objects)
    try:
        response = await client.get("/videos/ev-j/result.jsonl")
        body = await response.text()
        page = await (await client.get("/videos/ev-j")).text()
        missing = await client.get("/videos/nope/result.jsonl")
    finally:
        await client.close()
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("application/jsonl")
    assert body == export(final_json(), "jsonl")
    assert 'id="export-jsonl"' in page
    assert 'data-track-id="1" data-first="0" data-last="95"' in page
    assert "#1 car" in page
    assert missing.status == 404
