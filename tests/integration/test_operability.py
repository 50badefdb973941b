"""Operability against real servers: readiness, metrics, shutdown, startup errors, no secrets."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from support.documents import stored_document
from support.faults import kafka_serves_groups
from support.objects import metric
from support.stack import (
    REPO,
    isolated_settings,
    running,
    service_process,
    store_of,
    submit_video,
    wait_for,
)
from support.videos import make_video, real_video
from video_runner import bootstrap

STACK = ["bash", str(REPO / "tools" / "stack" / "stack.sh")]


def get(port, path):
    """GET a local URL; returns (status, body as JSON or text)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            status, data = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, data = error.code, error.read()
    except urllib.error.URLError as error:  # not listening yet
        return 0, str(error)
    try:
        return status, json.loads(data)
    except ValueError:
        return status, data.decode()


async def get_async(port, path):
    return await asyncio.to_thread(get, port, path)


async def ready_status(port, expected, timeout_s=60):
    async def check():
        status, body = await get_async(port, "/health/ready")
        return (status, body) if status == expected else None

    return await wait_for(check, timeout_s=timeout_s, every_s=0.5)


def stack(*args):
    subprocess.run([*STACK, *args], check=True, cwd=REPO, timeout=180)


async def test_metrics_count_exactly_the_frames_of_a_real_video(settings):
    """After bigbuckbunny.mp4 (132 frames), the counters say 27 frames extracted and published."""
    runner = bootstrap.Runner(settings)
    from video_runner.entrypoints.http import start_http

    http = await start_http(runner.service, "127.0.0.1", settings.http_port)
    try:
        async with running(runner):
            event_id = await submit_video(settings, real_video("bigbuckbunny.mp4"))
            store = store_of(settings)
            try:

                async def extracted():
                    document = await stored_document(store, event_id)
                    return document and document.get("total_frames") is not None

                await wait_for(extracted, timeout_s=90)
            finally:
                await store.close()
            status, text = await get_async(settings.http_port, "/metrics")
            _, prediction = await get_async(settings.http_port, f"/predictions/{event_id}")
            missing = await get_async(settings.http_port, "/predictions/no-such-event")
    finally:
        await http.cleanup()
    assert status == 200
    assert "video_runner_frames_extracted_total 27.0" in text
    assert "video_runner_frames_published_total 27.0" in text
    assert 'video_runner_stage_seconds_count{stage="download"} 1.0' in text
    assert metric(runner.telemetry.registry, "events_received_total") == 1
    assert prediction["status"] == "processing"
    assert prediction["frames_published"] == 27
    assert prediction["total_frames"] == 27
    assert prediction["progress_percent"] == 50.0
    assert missing[0] == 404


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_sigterm_mid_video_exits_zero_quickly_and_a_restart_finishes_the_video(tmp_path):
    """SIGTERM during a long extraction: exit 0 within 15 s; the next runner completes the video."""
    settings = isolated_settings(tmp_path / "work", upload_concurrency=2, shutdown_drain_s=1.0)
    video = make_video(tmp_path / "long.mp4", frames=2000, width=640, height=480)
    store = store_of(settings)
    try:
        with service_process("serve", settings, tmp_path / "runner-1.log") as first:
            event_id = await submit_video(settings, video)

            async def started():
                document = await stored_document(store, event_id)
                return document and (document.get("frames_published") or 0) > 0

            await wait_for(started, timeout_s=90, every_s=0.05)
            began = time.monotonic()
            code = await asyncio.to_thread(first.terminate, 30)
            took = time.monotonic() - began
        assert code == 0, first.log_text()[-2000:]
        assert took < 15
        assert (await stored_document(store, event_id)).get(
            "total_frames"
        ) is None  # unfinished, uncommitted
        with service_process("serve", settings, tmp_path / "runner-2.log"):

            async def finished():
                document = await stored_document(store, event_id)
                return document if document.get("total_frames") is not None else None

            document = await wait_for(finished, timeout_s=240)
    finally:
        await store.close()
    assert document["total_frames"] == 400


async def test_a_wrong_s3_secret_is_a_clear_startup_error_not_a_hang(tmp_path):
    """With a wrong S3 secret the runner exits non-zero at once, saying so, without the secret."""
    settings = isolated_settings(tmp_path / "work", s3_secret_access_key="wrong-secret-0123456789")
    began = time.monotonic()
    with service_process("serve", settings, tmp_path / "runner.log") as runner:
        code = await asyncio.to_thread(runner.process.wait, 60)
    assert time.monotonic() - began < 60
    assert code == 2
    log = runner.log_text()
    assert "s3 refused access" in log
    assert "SignatureDoesNotMatch" in log
    assert "wrong-secret-0123456789" not in log


async def test_a_whole_run_logs_json_lines_without_any_secret(tmp_path):
    """Every log line of a run with secrets in its settings is JSON, and no secret appears."""
    secret_uri = "mongodb://runner:Sup3rSecretPw@127.0.0.1:1/?serverSelectionTimeoutMS=500"
    settings = isolated_settings(tmp_path / "work", mongo_uri=secret_uri, mongo_timeout_ms=500)
    with service_process("serve", settings, tmp_path / "runner.log") as runner:
        _, body = await ready_status(settings.http_port, 503)
        assert body["checks"]["mongodb"]["status"] == "down"
        await asyncio.sleep(2)  # let the startup retries log their reasons
        assert runner.terminate(30) == 0
    text = runner.log_text()
    s3_secret = settings.s3_secret_access_key.get_secret_value()
    assert "Sup3rSecretPw" not in text
    assert s3_secret not in text
    assert "Sup3rSecretPw" not in json.dumps(body)
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert any(line["msg"] == "dependency not ready, retrying" for line in lines)


# Last in this module: bouncing the shared servers must not disturb the other tests.
@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("server", "check"), [("s3", "s3"), ("mongo", "mongodb"), ("kafka", "kafka")]
)
async def test_readiness_names_a_stopped_server_and_recovers_when_it_returns(
    tmp_path, server, check
):
    """Stopping one server makes /health/ready 503 naming it; starting it makes it 200 again."""
    settings = isolated_settings(tmp_path / "work")
    with service_process("serve", settings, tmp_path / "runner.log"):
        await ready_status(settings.http_port, 200)
        try:
            await asyncio.to_thread(stack, "stop-one", server)
            _, body = await ready_status(settings.http_port, 503)
            assert body["checks"][check]["status"] == "down"
            assert "latency_ms" in body["checks"][check]
            others = {name for name, c in body["checks"].items() if c["status"] == "down"}
            assert check in others
        finally:
            await asyncio.to_thread(stack, "start-one", server)
            await kafka_serves_groups(settings)
        _, body = await ready_status(settings.http_port, 200, timeout_s=120)
        assert all(c["status"] == "up" for c in body["checks"].values())
        assert (await get_async(settings.http_port, "/health"))[0] == 200
