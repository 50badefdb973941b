"""Hostile input on the real stack: every place a sender, a detector or a webhook receiver
controls what the runner reads, one test per rule (docs/contracts.md, "Refusals").

The runner's own memory is measured where the input could blow it up (an endless webhook reply,
a huge picture in a small video): as its process's peak RSS (``VmHWM``), or the peak RSS of a
``video-runner extract`` child read from ``wait4``. docs/operations.md quotes the figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer

from support.documents import stored_document
from support.events import prepare_event, publish_results, result
from support.objects import frame_ids_of, metric
from support.stack import (
    REPO,
    create_topic,
    isolated_settings,
    publish,
    publish_video_event,
    read_topic,
    running,
    service_process,
    settings_env,
    store_of,
    wait_for,
)
from support.videos import make_picture_size_switch, make_video
from video_runner import bootstrap
from video_runner.entrypoints.http import start_http

#: A runner's peak RSS may not pass this while it refuses a huge picture or an endless reply:
#: its own baseline (Python, Kafka, S3 and MongoDB clients, FFmpeg) is about 150-200 MB, the
#: 16000x16000 picture alone would be 384 MB of YUV, and decoding it took over 800 MB.
PEAK_RSS_BOUND_MB = 450
CLI = (sys.executable, "-m", "video_runner.entrypoints.cli")


@pytest.fixture
def settings(tmp_path):
    return isolated_settings(tmp_path / "work")


@pytest.fixture
async def store(settings):
    store = store_of(settings)
    await store.ensure_indexes()
    yield store
    await store.close()


@contextlib.asynccontextmanager
async def system(
    settings, *, outbox: bool = True, http: bool = False
) -> AsyncIterator[bootstrap.Runner]:
    """A runner (with its dashboard on ``settings.http_port`` if ``http``) and an outbox-S3
    worker, in this event loop, against the stack."""
    runner = bootstrap.Runner(settings)
    async with contextlib.AsyncExitStack() as stack:
        if http:
            site = await start_http(runner.service, "127.0.0.1", settings.http_port)
            stack.push_async_callback(site.cleanup)
        await stack.enter_async_context(running(runner))
        if outbox:
            await stack.enter_async_context(running(bootstrap.Outbox(settings)))
        yield runner


async def status_is(store, event_id: str, status: str, timeout_s: float = 90.0) -> dict[str, Any]:
    async def check():
        document = await stored_document(store, event_id)
        return document if document and document["status"] == status else None

    return await wait_for(check, timeout_s=timeout_s)


async def notices_of(settings, expected: int, settle_s: float = 3.0) -> dict[str, list[dict]]:
    """The completion notices on ``prediction_events`` by key, once ``expected`` have arrived
    and ``settle_s`` more went by (a duplicate would show up in that time)."""
    topic = settings.topic_prediction_events
    await read_topic(settings, topic, until=lambda rs: len(rs) >= expected, timeout_s=60)
    await asyncio.sleep(settle_s)
    records = await read_topic(settings, topic, until=lambda rs: len(rs) >= expected, timeout_s=10)
    by_key: dict[str, list[dict]] = {}
    for record in records:
        by_key.setdefault(record.key.decode(), []).append(json.loads(record.value))
    return by_key


async def ready_event(settings, store, event_id: str, objects: list[dict], frames: int) -> dict:
    """An event of ``frames`` 64x48 frames, each with ``objects``, through the results path and
    the outbox to ``ready``."""
    frame_ids = [5 * i for i in range(frames)]
    await bootstrap.object_store(settings).ensure_bucket(settings.bucket_videos)
    await prepare_event(settings, store, event_id, frame_ids)
    await publish_results(settings, [result(event_id, f, objects) for f in frame_ids])
    return await status_is(store, event_id, "ready", timeout_s=180)


def peak_rss_mb(pid: int) -> float:
    """A live process's peak resident set (``VmHWM``), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for process {pid}")


async def http_get(url: str) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, dict(response.headers), await response.read()


async def dashboard_up(settings) -> None:
    base = f"http://127.0.0.1:{settings.http_port}"

    async def up():
        try:
            return (await http_get(base + "/health/live"))[0] == 200
        except aiohttp.ClientError:
            return False

    await wait_for(up, timeout_s=60)


def _box(index: int) -> list[float]:
    return [1.0 + index % 20, 2.0, 30.0 + index % 20, 40.0]


# --- 1. Class names are never document keys ------------------------------------------------

HOSTILE_CLASSES = [
    "traffic.light",  # a dot: a path separator in a MongoDB key
    "$where",  # a leading $: an operator
    "$",
    "a.b.$c",
    "   ",  # empty once stripped
    "",
    "feu de circulation · 信号灯 · светофор",
    "\u202eevil\u200b",  # bidi override, zero-width space
    "_id",
    "x" * 128,  # the longest name kept (MAX_CLASS_NAME_LENGTH)
]
TOO_LONG_CLASS = "y" * 256


@pytest.mark.timeout(300)
async def test_every_realistic_and_hostile_class_name_goes_through_to_ready(settings, store):
    """Dots, a leading ``$``, blanks, unicode, bidi characters, ``_id``, 128 characters: every
    frame's classes reach ``ready`` with their counts (stored as pairs, never as keys) and the
    notice carries them all; a 256-character name is dropped and counted, not a failure."""
    objects = [
        {"class": name, "box": _box(index), "conf": 0.5}
        for index, name in enumerate(HOSTILE_CLASSES)
    ]
    objects.append({"class": TOO_LONG_CLASS, "box": _box(99), "conf": 0.5})
    async with system(settings) as runner:
        document = await ready_event(settings, store, "hostile-classes", objects, frames=6)
        notices = await notices_of(settings, expected=1, settle_s=1.0)
        rejected = metric(runner.telemetry.registry, "objects_rejected_total")
    pairs = {pair["class"]: pair["count"] for pair in document["detections"]}
    assert pairs == dict.fromkeys(HOSTILE_CLASSES, 6)
    assert not any(key.startswith("$") or "." in key for key in document)
    [notice] = notices["hostile-classes"]
    assert notice["status"] == "ready"
    assert notice["detections"] == dict.fromkeys(HOSTILE_CLASSES, 6)
    bucket, key = document["output_s3"].removeprefix("s3://").split("/", 1)
    final = json.loads(await bootstrap.object_store(settings).get_bytes(bucket, key))
    assert [o["class"] for o in final["frames"][0]["objects"]] == HOSTILE_CLASSES
    assert rejected == 6  # the 256-character name, once per frame


# --- 2. Bounded reads of webhook replies ----------------------------------------------------


class EndlessReceiver:
    """An HTTP server that answers every POST with 200 and a body that never ends (until the
    caller hangs up or ``cap`` bytes went out)."""

    def __init__(self, cap: int = 4 * 1024**3) -> None:
        self.cap = cap
        self.posts = 0
        self.sent = 0
        self.hung_up = threading.Event()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                connection, _ = self._server.accept()
                threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        with connection:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = connection.recv(65536)
                if not chunk:
                    return
                head += chunk
            header, _, body = head.partition(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in header.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            while len(body) < length:
                body += connection.recv(65536)
            self.posts += 1
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
            block = b"A" * 65536
            try:
                while self.sent < self.cap:
                    connection.sendall(block)
                    self.sent += len(block)
            except OSError:
                self.hung_up.set()

    def close(self) -> None:
        self._server.close()


@pytest.mark.timeout(180)
async def test_a_webhook_receiver_answering_200_with_an_endless_body_costs_the_runner_nothing(
    tmp_path,
):
    """The runner process fails an event (its video is missing) whose callback is a receiver
    that answers 200 and then streams forever: the delivery counts as 200, the runner hangs
    up after a few KB, and its peak RSS stays far below what reading the body would take."""
    receiver = EndlessReceiver()
    settings = isolated_settings(
        tmp_path / "work", webhook_allowed_hosts=f"127.0.0.1:{receiver.port}"
    )
    store = store_of(settings)
    try:
        with service_process("serve", settings, tmp_path / "runner.log") as runner:
            await publish_video_event(
                settings,
                "endless-reply",
                "input/absent.mp4",
                {"callback_url": f"http://127.0.0.1:{receiver.port}/hook"},
            )

            async def delivered():
                document = await stored_document(store, "endless-reply")
                webhook = (document or {}).get("webhook") or {}
                return document if webhook.get("state") == "delivered" else None

            document = await wait_for(delivered, timeout_s=90)
            await asyncio.to_thread(receiver.hung_up.wait, 30)
            peak = peak_rss_mb(runner.process.pid)
    finally:
        await store.close()
        receiver.close()
    print(f"\nrunner peak RSS after an endless webhook reply: {peak:.0f} MB")
    assert document["status"] == "failed"
    assert document["error"]["code"] == "missing_object"
    assert document["webhook"]["last_status"] == 200
    assert receiver.posts == 1
    assert receiver.hung_up.is_set()
    # What got out before the hang-up is socket buffers, not a body read to its end.
    assert receiver.sent < 256 * 1024**2
    assert peak < PEAK_RSS_BOUND_MB


# --- 3. Callback URLs parsed and refused up front -------------------------------------------


@pytest.mark.timeout(180)
async def test_callback_urls_with_bad_ports_or_a_port_the_allowlist_does_not_name_are_bad_options(
    tmp_path,
):
    """``:99999`` and ``:8811:80`` are no URL, refused before anything calls them; with
    ``hooks.example`` alone on the allowlist, port 8080 of it is refused and its default port
    passes the check (the event then fails on its missing video, not on its callback)."""
    settings = isolated_settings(tmp_path / "work", webhook_allowed_hosts="hooks.example")
    urls = {
        "port-too-big": "http://hooks.example:99999/hook",
        "two-ports": "http://hooks.example:8811:80/hook",
        "other-port": "http://hooks.example:8080/hook",
        "default-port": "http://hooks.example/hook",
    }
    store = store_of(settings)
    try:
        async with system(settings, outbox=False):
            for event_id, url in urls.items():
                await publish_video_event(
                    settings, event_id, f"input/{event_id}.mp4", {"callback_url": url}
                )
            documents = {e: await status_is(store, e, "failed", timeout_s=60) for e in urls}
            notices = await notices_of(settings, expected=len(urls))
    finally:
        await store.close()
    codes = {event_id: d["error"]["code"] for event_id, d in documents.items()}
    assert codes == {
        "port-too-big": "bad_options",
        "two-ports": "bad_options",
        "other-port": "bad_options",
        "default-port": "missing_object",
    }
    assert (
        "hooks.example:8080 is not in WEBHOOK_ALLOWED_HOSTS"
        in (documents["other-port"]["error"]["message"])
    )
    assert {key: len(found) for key, found in notices.items()} == dict.fromkeys(urls, 1)


# --- 4. Picture size checked before the decoder allocates it ---------------------------------


@pytest.fixture(scope="module")
def size_switch(tmp_path_factory) -> Path:
    """320x240 H.264, one 16000x16000 picture after 50 frames, then 320x240 again (~0.8 MB)."""
    return make_picture_size_switch(tmp_path_factory.mktemp("switch") / "switch.mkv")


def _extract_peak(video: Path, out: Path) -> tuple[int, str, float]:
    """``video-runner extract`` as a child: its exit code, stderr and peak RSS in MB."""
    child = subprocess.Popen(
        [*CLI, "extract", str(video), "--out", str(out)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        cwd=REPO,
    )
    assert child.stderr is not None
    stderr = child.stderr.read().decode()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    child.stderr.close()
    return child.returncode, stderr, usage.ru_maxrss / 1024


@pytest.mark.timeout(240)
async def test_one_huge_picture_mid_stream_is_frame_too_large_without_allocating_it(
    tmp_path, size_switch
):
    """The runner process fails the event with ``frame_too_large`` naming 16000x16000, with one
    failed notice, and its peak RSS stays under the bound (it was over 800 MB when the decoder
    allocated the picture before the check); ``video-runner extract`` refuses it alike."""
    assert size_switch.stat().st_size < 1024**2
    settings = isolated_settings(tmp_path / "work")
    store = store_of(settings)
    objects = bootstrap.object_store(settings)
    await objects.ensure_bucket(settings.bucket_videos)
    await objects.upload_file(
        settings.bucket_videos, "input/switch.mkv", size_switch, "video/x-matroska"
    )
    try:
        with service_process("serve", settings, tmp_path / "runner.log") as runner:
            await publish_video_event(settings, "size-switch", "input/switch.mkv")
            document = await status_is(store, "size-switch", "failed", timeout_s=120)
            notices = await notices_of(settings, expected=1, settle_s=1.0)
            runner_peak = peak_rss_mb(runner.process.pid)
    finally:
        await store.close()
    code, stderr, extract_peak = await asyncio.to_thread(
        _extract_peak, size_switch, tmp_path / "out"
    )
    print(
        f"\npeak RSS refusing a 16000x16000 picture: runner {runner_peak:.0f} MB,"
        f" extract {extract_peak:.0f} MB"
    )
    assert document["error"]["code"] == "frame_too_large"
    assert "16000x16000" in document["error"]["message"]
    assert [n["error"]["code"] for n in notices["size-switch"]] == ["frame_too_large"]
    assert runner_peak < PEAK_RSS_BOUND_MB
    assert code == 1
    assert "frame_too_large" in stderr
    assert extract_peak < PEAK_RSS_BOUND_MB


# --- 5. Dashboard pages bounded ---------------------------------------------------------------

#: A page of 49 frames and 1,000 class names stays this small (the list page and the video's).
PAGE_BOUND_BYTES = 64 * 1024


@pytest.mark.timeout(300)
async def test_a_video_of_49_frames_with_1000_distinct_classes_gives_small_pages(tmp_path):
    """Each of 49 frames holds 1,000 objects of 1,000 distinct classes: the video page names
    the top 20 with "980 more classes", the list names 5 with "995 more", both pages stay under
    64 KB, and a page past the last shows the last."""
    settings = isolated_settings(tmp_path / "work")
    store = store_of(settings)
    names = [f"class-{index:04d}" for index in range(1000)]
    objects = [{"class": name, "box": _box(i), "conf": 0.5} for i, name in enumerate(names)]
    base = f"http://127.0.0.1:{settings.http_port}"
    try:
        async with system(settings, http=True):
            await ready_event(settings, store, "many-classes", objects, frames=49)
            await dashboard_up(settings)
            video = await http_get(base + "/videos/many-classes")
            again = await http_get(base + "/videos/many-classes?page=7")
            listing = await http_get(base + "/")
    finally:
        await store.close()
    print(f"\npage sizes: video {len(video[2])} B, list {len(listing[2])} B")
    for status, _, body in (video, again, listing):
        assert status == 200
        assert len(body) < PAGE_BOUND_BYTES
    page = video[2].decode()
    assert "980 more classes" in page
    assert page.count('class="frame"') == 49
    assert "995 more" in listing[2].decode()
    assert again[2].count(b'class="frame"') == 49


# --- 6. CSV cells escaped ---------------------------------------------------------------------

FORMULAS = ['=HYPERLINK("http://x")', "+1+1", "-2", "@SUM(A1)", "\tTAB", "\rCR", "plain"]


@pytest.mark.timeout(300)
async def test_csv_exports_from_the_cli_and_the_dashboard_disarm_formula_cells(tmp_path):
    """Class names starting with ``=``, ``+``, ``-``, ``@``, tab or CR come out of ``result
    --format csv`` and the dashboard's ``result.csv`` with a leading quote; others as they are."""
    settings = isolated_settings(tmp_path / "work")
    store = store_of(settings)
    objects = [{"class": name, "box": _box(i), "conf": 0.5} for i, name in enumerate(FORMULAS)]
    try:
        async with system(settings, http=True):
            await ready_event(settings, store, "formulas", objects, frames=2)
            await dashboard_up(settings)
            status, headers, body = await http_get(
                f"http://127.0.0.1:{settings.http_port}/videos/formulas/result.csv"
            )
    finally:
        await store.close()
    cli = await asyncio.to_thread(
        subprocess.run,
        [*CLI, "result", "formulas", "--format", "csv"],
        env=settings_env(settings),
        capture_output=True,
        timeout=120,
        cwd=REPO,
        check=True,
    )
    expected = ["'" + name if name[0] in "=+-@\t\r" else name for name in FORMULAS] * 2
    for text in (cli.stdout.decode(), body.decode()):
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        assert [row["class"] for row in rows] == expected
    assert status == 200
    assert headers["Content-Type"].startswith("text/csv")


# --- 7. Refused events end failed, with one notice ---------------------------------------------


@pytest.mark.timeout(180)
async def test_every_refused_event_with_a_usable_id_ends_failed_with_its_code_and_one_notice(
    settings, store
):
    """A bucket outside ALLOWED_SOURCE_BUCKETS, a traversal key, bad options, a missing video:
    each event is a ``failed`` document with its code (even those refused before any document
    existed) and exactly one failed notice on prediction_events."""
    bucket = settings.bucket_videos

    def event(event_id: str, **payload: Any) -> dict[str, Any]:
        return {"event_id": event_id, "payload": {"bucket": bucket, **payload}}

    refused = {
        "other-bucket": (
            event("other-bucket", bucket="someone-elses", object="input/a.mp4"),
            "bucket_not_allowed",
        ),
        "traversal": (event("traversal", object="input/../../etc/passwd"), "bad_id"),
        "bad-every": (
            event("bad-every", object="input/a.mp4", options={"every_n": 0}),
            "bad_options",
        ),
        "bad-window": (
            event("bad-window", object="input/a.mp4", options={"start_ms": 9, "end_ms": 3}),
            "bad_options",
        ),
        "absent": (event("absent", object="input/absent.mp4"), "missing_object"),
    }
    async with system(settings, outbox=False):
        for event_id, (message, _) in refused.items():
            await publish(settings, settings.topic_outbox_events, event_id, message)
        documents = {e: await status_is(store, e, "failed", timeout_s=60) for e in refused}
        notices = await notices_of(settings, expected=len(refused))
    assert {e: d["error"]["code"] for e, d in documents.items()} == {
        e: code for e, (_, code) in refused.items()
    }
    assert documents["other-bucket"]["source"]["bucket"] == "someone-elses"
    assert {key: [n["error"]["code"] for n in found] for key, found in notices.items()} == {
        e: [code] for e, (_, code) in refused.items()
    }


# --- 8. One extraction per event id under a burst of copies ------------------------------------

COPIES = 300


@pytest.mark.timeout(300)
async def test_300_copies_of_one_event_published_at_once_extract_it_once(tmp_path):
    """300 copies of one event on three partitions, sent in one burst, with two runners: one
    extraction, and each sampled frame's task on inference_tasks exactly once."""
    settings = isolated_settings(tmp_path / "work")
    await create_topic(settings, settings.topic_outbox_events, 3)
    objects = bootstrap.object_store(settings)
    await objects.ensure_bucket(settings.bucket_videos)
    video = make_video(tmp_path / "burst.mp4", frames=60, width=160, height=120)
    await objects.upload_file(settings.bucket_videos, "input/burst.mp4", video, "video/mp4")
    event = {
        "event_id": "burst",
        "payload": {"bucket": settings.bucket_videos, "object": "input/burst.mp4"},
    }
    data = json.dumps(event).encode()
    first, second = bootstrap.Runner(settings), bootstrap.Runner(settings)
    store = store_of(settings)
    try:
        async with running(first), running(second):
            producer = AIOKafkaProducer(
                bootstrap_servers=settings.kafka_bootstrap_servers, acks="all"
            )
            await producer.start()
            try:
                sends = [
                    await producer.send(settings.topic_outbox_events, data, partition=i % 3)
                    for i in range(COPIES)
                ]
                await asyncio.gather(*sends)
            finally:
                await producer.stop()

            def counted(name: str) -> float:
                return sum(metric(r.telemetry.registry, name) for r in (first, second))

            async def all_seen():
                return counted("events_received_total") >= COPIES

            await wait_for(all_seen, timeout_s=180)
            document = await stored_document(store, "burst")
            records = await read_topic(
                settings, settings.topic_inference_tasks, until=lambda rs: len(rs) >= 12
            )
            await asyncio.sleep(3)
            records = await read_topic(
                settings, settings.topic_inference_tasks, until=lambda rs: len(rs) >= 12
            )
            extracted = counted("events_extracted_total")
            duplicates = counted("events_duplicate_total")
    finally:
        await store.close()
    assert frame_ids_of(records, "burst") == list(range(0, 60, 5))
    assert len(records) == 12
    assert extracted == 1
    assert duplicates == COPIES - 1
    assert document["total_frames"] == 12


# --- 9. Frame ids, security headers, shown text, failure messages -----------------------------

SECURITY_HEADERS = ("X-Content-Type-Options", "Content-Security-Policy")


@pytest.mark.timeout(180)
async def test_dashboard_refuses_hostile_frame_ids_sends_security_headers_and_neutralises_text(
    tmp_path,
):
    """A 5,000-digit or non-ASCII-digit frame id is a 404, not a 500; every page (list, video,
    frame, export, health, an error) has ``nosniff`` and a CSP with ``frame-ancestors``; a tag
    with bidi and control characters is shown as escapes; the failure message of a file FFmpeg
    cannot read names neither the runner's work directory nor the test's."""
    settings = isolated_settings(tmp_path / "work")
    store = store_of(settings)
    objects = bootstrap.object_store(settings)
    await objects.ensure_bucket(settings.bucket_videos)
    await objects.put_bytes(
        settings.bucket_videos, "input/junk.mp4", b"not a video\n" * 100, "video/mp4"
    )
    tag = "job \u202eevil\u202c \x1b[31mred\x07"
    base = f"http://127.0.0.1:{settings.http_port}"
    try:
        async with system(settings, outbox=False, http=True):
            await publish_video_event(settings, "junk", "input/junk.mp4", {"tag": tag})
            document = await status_is(store, "junk", "failed", timeout_s=60)
            await dashboard_up(settings)
            pages = {
                path: await http_get(base + path)
                for path in (
                    "/",
                    "/videos/junk",
                    "/videos/junk/result.csv",
                    "/videos/unknown-event",
                    "/predictions/junk/frames/0.jpg",
                    "/predictions/junk/frames/" + "7" * 5000 + ".jpg",
                    "/predictions/junk/frames/\u0661\u0662.jpg",
                    "/predictions/junk/frames/\uff11.jpg",
                    "/health",
                )
            }
    finally:
        await store.close()
    statuses = {path: status for path, (status, _, _) in pages.items()}
    assert statuses["/"] == statuses["/videos/junk"] == statuses["/health"] == 200
    for path, (status, headers, _) in pages.items():
        assert status < 500, path
        assert headers.get("X-Content-Type-Options") == "nosniff", path
        assert "frame-ancestors 'none'" in headers.get("Content-Security-Policy", ""), path
    assert statuses["/predictions/junk/frames/" + "7" * 5000 + ".jpg"] in {400, 404}
    assert statuses["/predictions/junk/frames/\u0661\u0662.jpg"] in {400, 404}
    page = pages["/videos/junk"][2].decode()
    for hidden in ("\u202e", "\x1b", "\x07"):
        assert hidden not in page
    assert "\\u202eevil\\u202c" in page
    assert "\\u001b[31mred\\u0007" in page
    assert document["error"]["code"] == "not_a_video"
    message = document["error"]["message"]
    for root in (
        str(settings.work_dir),
        str(tmp_path),
    ):
        assert root not in message
        assert root not in page
    assert "junk" in message
    assert document["options"]["tag"] == tag  # stored as sent; only its display is neutralised
