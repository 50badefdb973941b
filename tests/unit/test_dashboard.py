"""The runner's read-only dashboard over fakes of the ports: pages, annotated frames, errors."""

from __future__ import annotations

import asyncio
import json
import re

import numpy as np
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from support.fakes import FakeDetector, FakeObjectStore, FakePredictionStore
from video_runner import bootstrap
from video_runner.domain.preprocess import decode_jpeg, encode_jpeg
from video_runner.domain.results import FrameResult
from video_runner.domain.status import Status
from video_runner.domain.task_pages import TaskPage, TaskRecord
from video_runner.entrypoints import dashboard
from video_runner.entrypoints.http import build_app
from video_runner.services.detection_reads import DetectionReader
from video_runner.settings import load_settings

FRAMES = "frames"
PERSON = {"class": "person", "box": [10.0, 10.0, 50.0, 70.0], "conf": 0.91}
VIDEO = {"width": 96, "height": 80, "fps": 25.0, "frame_count": 20, "duration_ms": 800}


def jpeg(seed: int) -> bytes:
    image = np.full((80, 96, 3), 60 + seed, dtype=np.uint8)
    return encode_jpeg(image, 95)


async def seeded():
    """A ready event (purged: detections only in its JSON), one processing, one failed."""
    store, objects = FakePredictionStore(), FakeObjectStore()
    store.put(
        "ready-1",
        Status.READY,
        video=VIDEO,
        sampling={"every_n": 5},
        source={"bucket": "videos", "object": "input/ready-1.mp4", "size_bytes": 2048},
        total_frames=4,
        results_received=4,
        output_s3="s3://videos/detection/ready-1.json",
        models=["yolov4-tiny@cf9fbfd0f6d4.c1"],
    )
    final = {
        "event_id": "ready-1",
        "frames": [
            {"frame_id": 0, "timestamp_ms": 0, "objects": [PERSON]},
            {"frame_id": 5, "timestamp_ms": 200, "objects": []},
            {"frame_id": 10, "timestamp_ms": 400, "objects": [PERSON, {**PERSON, "class": "car"}]},
            {"frame_id": 15, "timestamp_ms": 600, "objects": []},
        ],
    }
    await objects.put_bytes(
        "videos", "detection/ready-1.json", json.dumps(final).encode(), "application/json"
    )
    store.put("proc-1", Status.PROCESSING, video=VIDEO, sampling={"every_n": 5}, frames_published=2)
    tasks = tuple(TaskRecord(f, f * 40, 96, 80, f"frames/proc-1/{f}.jpg", 0, f) for f in (0, 5))
    await store.record_task_page("proc-1", TaskPage(0, FRAMES, tasks))
    await store.save_results([("proc-1", FrameResult(0, 0, [PERSON]))])
    await store.add_progress("proc-1", 0, _counts(1))
    store.put(
        "fail-1",
        Status.FAILED,
        error={"code": "not_a_video", "message": "<b>clip</b> is not a video"},
    )
    for event_id in ("ready-1", "proc-1"):
        for frame_id in (0, 5, 10, 15):
            await objects.put_bytes(
                FRAMES, f"frames/{event_id}/{frame_id}.jpg", jpeg(frame_id), "image/jpeg"
            )
    return store, objects


def _counts(stored):
    from video_runner.domain.results import ResultCounts

    return ResultCounts(stored=stored)


async def client_of(store, objects):
    app = web.Application()
    dashboard.add_routes(app, DetectionReader(store, objects, FRAMES))
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


def row_of(html, event_id):
    match = re.search(
        rf'<tr class="video" data-event-id="{event_id}"[^>]*>(.*?)</tr>', html, re.DOTALL
    )
    assert match, f"no row for {event_id}"
    return match.group(0)


async def test_the_list_shows_each_video_with_status_progress_frames_and_classes():
    """Ready, processing and failed videos each get a row with what a person needs first."""
    client = await client_of(*await seeded())
    try:
        response = await client.get("/")
        html = await response.text()
    finally:
        await client.close()
    assert response.status == 200
    ready = row_of(html, "ready-1")
    assert 'data-status="ready"' in ready
    assert 'data-progress="100.0"' in ready
    assert "4 / 4" in ready
    assert "person 2" in ready
    assert "car 1" in ready
    assert "0.8 s" in ready
    processing = row_of(html, "proc-1")
    assert 'data-status="processing"' in processing
    # 2 of 4 expected frames published, 1 result: (2 + 1) / 8.
    assert 'data-progress="37.5"' in processing
    assert "1 / 4" in processing
    assert "person 1" in processing
    assert '<code class="error-code">not_a_video</code>' in html


async def test_the_list_refreshes_itself_while_a_video_is_in_flight_even_without_javascript():
    """In flight: the body says so (the script reloads) and a <noscript> refresh is there."""
    store, objects = await seeded()
    client = await client_of(store, objects)
    try:
        busy = await (await client.get("/")).text()
        del store.documents["proc-1"]
        idle = await (await client.get("/")).text()
    finally:
        await client.close()
    assert 'data-in-flight="1"' in busy
    assert '<noscript><meta http-equiv="refresh"' in busy
    assert 'data-in-flight="0"' in idle
    assert "http-equiv" not in idle


async def test_text_from_documents_is_escaped_in_the_pages():
    """An error message holding markup is shown as text, never interpreted."""
    client = await client_of(*await seeded())
    try:
        html = await (await client.get("/")).text()
        page = await (await client.get("/videos/fail-1")).text()
    finally:
        await client.close()
    assert "<b>clip</b>" not in html
    assert "&lt;b&gt;clip&lt;/b&gt;" in html
    assert "&lt;b&gt;clip&lt;/b&gt;" in page


async def test_a_ready_video_page_reads_its_final_json_and_shows_frames_timeline_and_links():
    """With its per-frame documents purged, the page still shows every frame and class, and
    names the model that found them."""
    client = await client_of(*await seeded())
    try:
        response = await client.get("/videos/ready-1")
        html = await response.text()
        final = await client.get("/videos/ready-1/result.json")
        body = await final.json()
    finally:
        await client.close()
    assert response.status == 200
    assert html.count('<figure class="frame"') == 4
    assert 'data-frame-id="10" data-objects="2"' in html
    assert "/predictions/ready-1/frames/10.jpg?annotated=1" in html
    assert 'aria-label="person along the video"' in html
    assert 'aria-label="car along the video"' in html
    assert "every 5th frame" in html
    assert "2.0 KB" in html
    assert '<code id="models">yolov4-tiny@cf9fbfd0f6d4.c1</code>' in html
    assert 'href="/videos/ready-1/result.json"' in html
    assert final.status == 200
    assert body["event_id"] == "ready-1"


async def test_a_ready_video_links_its_coco_and_csv_exports_and_serves_them():
    """The video page links the COCO and CSV exports of the final JSON; both are served, with
    one COCO annotation and one CSV row per object."""
    client = await client_of(*await seeded())
    try:
        html = await (await client.get("/videos/ready-1")).text()
        coco = await client.get("/videos/ready-1/result.coco.json")
        coco_body = await coco.json()
        table = await client.get("/videos/ready-1/result.csv")
        rows = (await table.text()).splitlines()
        final = await (await client.get("/videos/ready-1/result.json")).json()
    finally:
        await client.close()
    objects = sum(len(f["objects"]) for f in final["frames"])
    assert 'href="/videos/ready-1/result.coco.json"' in html
    assert 'href="/videos/ready-1/result.csv"' in html
    assert coco.status == 200
    assert len(coco_body["annotations"]) == objects
    assert table.status == 200
    assert table.content_type == "text/csv"
    assert len(rows) == 1 + objects


async def test_a_processing_video_page_shows_published_frames_and_which_await_a_result():
    """Frames come from the task pages; one without a stored result is marked as awaiting."""
    client = await client_of(*await seeded())
    try:
        html = await (await client.get("/videos/proc-1")).text()
        not_ready = await client.get("/videos/proc-1/result.json")
    finally:
        await client.close()
    assert 'data-frame-id="0" data-objects="1" data-done="1"' in html
    assert 'data-frame-id="5" data-objects="0" data-done="0"' in html
    assert "awaiting result" in html
    assert not_ready.status == 404


async def test_an_annotated_frame_differs_from_the_stored_one_only_where_there_are_detections():
    """annotated=1 draws the boxes; annotated=0, or a frame without objects, is the stored JPEG."""
    store, objects = await seeded()
    client = await client_of(store, objects)
    try:
        drawn = await client.get("/predictions/ready-1/frames/10.jpg?annotated=1")
        drawn_bytes = await drawn.read()
        stored = await (await client.get("/predictions/ready-1/frames/10.jpg?annotated=0")).read()
        empty = await (await client.get("/predictions/ready-1/frames/5.jpg")).read()
        live = await (await client.get("/predictions/proc-1/frames/0.jpg?annotated=1")).read()
    finally:
        await client.close()
    assert drawn.status == 200
    assert drawn.headers["Content-Type"] == "image/jpeg"
    assert stored == objects.objects[FRAMES, "frames/ready-1/10.jpg"]
    assert drawn_bytes != stored
    assert decode_jpeg(drawn_bytes).shape == decode_jpeg(stored).shape
    assert empty == objects.objects[FRAMES, "frames/ready-1/5.jpg"]
    assert live != objects.objects[FRAMES, "frames/proc-1/0.jpg"]


async def test_unknown_events_and_frames_are_404_and_ids_off_the_allowlist_400():
    """The same allowlist as /predictions/{event_id}; nothing is read for a bad id."""
    client = await client_of(*await seeded())
    try:
        statuses = {
            path: (await client.get(path)).status
            for path in (
                "/videos/nope",
                "/videos/a.b",
                "/predictions/nope/frames/0.jpg",
                "/predictions/ready-1/frames/999.jpg",
                "/predictions/a.b/frames/0.jpg",
                "/predictions/ready-1/frames/x.jpg",
            )
        }
    finally:
        await client.close()
    assert statuses == {
        "/videos/nope": 404,
        "/videos/a.b": 400,
        "/predictions/nope/frames/0.jpg": 404,
        "/predictions/ready-1/frames/999.jpg": 404,
        "/predictions/a.b/frames/0.jpg": 400,
        "/predictions/ready-1/frames/x.jpg": 404,
    }


async def test_a_dependency_down_is_a_503_with_its_reason():
    """MongoDB not answering makes the page a 503 that names the dependency."""
    store, objects = await seeded()
    client = await client_of(store, objects)
    try:
        store.fail_next(50)
        response = await client.get("/")
        text = await response.text()
    finally:
        await client.close()
    assert response.status == 503
    assert "mongodb" in text


async def test_a_ready_event_final_json_is_read_once_for_many_frames():
    """Annotated frames of a ready video share one parse of its JSON (it never changes)."""
    store, objects = await seeded()
    reads = []
    original = objects.get_bytes

    async def counting(bucket, key):
        reads.append(key)
        return await original(bucket, key)

    objects.get_bytes = counting
    client = await client_of(store, objects)
    try:
        for frame_id in (0, 5, 10, 15):
            await client.get(f"/predictions/ready-1/frames/{frame_id}.jpg?annotated=1")
        await client.get("/videos/ready-1")
    finally:
        await client.close()
    assert reads.count("detection/ready-1.json") == 1


async def test_the_runner_app_serves_the_dashboard_unless_it_is_disabled():
    """DASHBOARD_ENABLED=false leaves the runner, as the composition root builds it, with its
    API only; the inference worker never serves one."""

    def paths(service):
        app = build_app(service)
        return {r.resource.canonical for r in app.router.routes()}  # type: ignore[union-attr]

    enabled = bootstrap.Runner(load_settings(dashboard_enabled=True))
    disabled = bootstrap.Runner(load_settings(dashboard_enabled=False))
    inference = bootstrap.Inference(load_settings(), detector_override=FakeDetector())
    try:
        assert "/videos/{event_id}" in paths(enabled.service)
        assert "/" not in paths(disabled.service)
        assert "/predictions/{event_id}" in paths(disabled.service)
        assert "/" not in paths(inference.service)
    finally:
        stopped = asyncio.Event()
        stopped.set()  # run() with stop already set starts nothing and closes every client
        for process in (enabled, disabled, inference):
            await process.run(stopped)
