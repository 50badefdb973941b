"""The HTTP surface: health, readiness, metrics, prediction status and the OpenAPI document."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from types import SimpleNamespace

from aiohttp.test_utils import TestClient, TestServer

from support.fakes import FakePredictionStore
from video_runner.adapters.kafka import LoopStats
from video_runner.adapters.metrics import PrometheusTelemetry
from video_runner.entrypoints.http import build_app
from video_runner.errors import DependencyUnavailable
from video_runner.runtime import Service
from video_runner.settings import load_settings


async def up():
    return None


async def down():
    raise DependencyUnavailable("s3", "connection refused")


async def hangs():
    await asyncio.sleep(60)


def service(checks, store=None, started=True):
    result = Service(
        role="runner",
        settings=load_settings(),
        telemetry=PrometheusTelemetry(),
        checks=checks,
        store=store,
    )
    if started:
        result.started.set()
    return result


async def client_for(svc):
    client = TestClient(TestServer(build_app(svc)))
    await client.start_server()
    return client


async def test_readiness_is_200_with_each_check_when_every_dependency_answers():
    """All checks up: 200, each with its status and latency."""
    client = await client_for(service({"kafka": up, "s3": up, "mongodb": up}))
    try:
        response = await client.get("/health/ready")
        body = await response.json()
    finally:
        await client.close()
    assert response.status == 200
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"kafka", "s3", "mongodb"}
    assert all(c["status"] == "up" and c["latency_ms"] >= 0 for c in body["checks"].values())


async def test_readiness_is_503_naming_the_dependency_that_is_down():
    """One check failing makes the answer 503, and the body names it with its error."""
    client = await client_for(service({"kafka": up, "s3": down, "mongodb": up}))
    try:
        response = await client.get("/health/ready")
        body = await response.json()
    finally:
        await client.close()
    assert response.status == 503
    assert body["checks"]["s3"]["status"] == "down"
    assert "connection refused" in body["checks"]["s3"]["error"]
    assert body["checks"]["kafka"]["status"] == "up"


async def test_a_check_that_hangs_is_reported_down_within_its_timeout():
    """A dependency that never answers does not hang readiness: it is down after 3 s."""
    client = await client_for(service({"mongodb": hangs}))
    try:
        response = await asyncio.wait_for(client.get("/health/ready"), timeout=10)
        body = await response.json()
    finally:
        await client.close()
    assert response.status == 503
    assert "no answer" in body["checks"]["mongodb"]["error"]


async def test_a_service_still_starting_is_alive_but_not_ready():
    """Before startup finishes, live and health answer 200 while ready answers 503."""
    svc = service({"kafka": up}, started=False)
    svc.startup_error = "dependencies: kafka unavailable"
    client = await client_for(svc)
    try:
        live = await client.get("/health/live")
        health = await client.get("/health")
        health_body = await health.json()
        ready = await client.get("/health/ready")
        body = await ready.json()
    finally:
        await client.close()
    assert live.status == 200
    assert health.status == 200
    assert health_body["status"] == "healthy"
    assert ready.status == 503
    assert body["startup_error"] == "dependencies: kafka unavailable"


async def test_readiness_names_what_a_consumer_is_waiting_out():
    """A consumer whose records wait for S3 still polls, so it is up, and says what it waits for."""
    stats = LoopStats(waiting_for={"s3": 2})
    svc = service({"s3": up})
    svc.loops.append(SimpleNamespace(topic="outbox_events", stats=stats))  # type: ignore[arg-type]
    ready, body = await svc.readiness()
    assert ready
    consumer = body["checks"]["consumer:outbox_events"]
    assert (consumer["status"], consumer["waiting_for"]) == ("up", ["s3"])
    stats.waiting_for.clear()
    _, body = await svc.readiness()
    assert body["checks"]["consumer:outbox_events"]["waiting_for"] == []


async def test_metrics_are_prometheus_text_with_the_counters_services_emitted():
    """What a service counted is what /metrics shows, in Prometheus text format."""
    svc = service({})
    svc.telemetry.count("frames_published", 27)
    client = await client_for(svc)
    try:
        response = await client.get("/metrics")
        text = await response.text()
    finally:
        await client.close()
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    assert "video_runner_frames_published_total 27.0" in text


async def test_prediction_status_is_200_for_a_known_event_404_unknown_400_invalid():
    """The status view of a known event, 404 for an unknown one, 400 for an id off the allowlist."""
    store = FakePredictionStore()
    await store.begin("ev-1", {"sampling": {"every_n": 5}, "video": {"frame_count": 100}})
    await store.update_processing("ev-1", {"frames_published": 10})
    client = await client_for(service({}, store=store))
    try:
        known = await client.get("/predictions/ev-1")
        body = await known.json()
        unknown = await client.get("/predictions/nope")
        # "." is off the allowlist: the route matches and the handler refuses the id itself.
        invalid = await client.get("/predictions/..etc")
    finally:
        await client.close()
    assert known.status == 200
    assert body["status"] == "processing"
    assert body["expected_frames"] == 20
    assert body["progress_percent"] == 25.0
    assert unknown.status == 404
    assert invalid.status == 400


async def test_the_openapi_document_describes_every_route_the_app_serves():
    """Each route of the app has a path in the OpenAPI document it serves."""
    app = build_app(service({}))
    routes = {r.resource.canonical for r in app.router.routes()}  # type: ignore[union-attr]
    client = await client_for(service({}))
    try:
        response = await client.get("/openapi.json")
        document = json.loads(await response.text())
    finally:
        await client.close()
    assert document["openapi"].startswith("3.")
    assert routes <= set(document["paths"])


def test_the_openapi_error_codes_are_exactly_the_error_codes_of_the_code():
    """The documented enum of ``error.code`` cannot drift from ``ErrorCode``."""
    from importlib import resources

    from video_runner.errors import ErrorCode

    text = resources.files("video_runner.contracts").joinpath("openapi.json").read_text("utf-8")
    schema = json.loads(text)["components"]["schemas"]["EventError"]
    assert set(schema["properties"]["code"]["enum"]) == {code.value for code in ErrorCode}


def test_the_status_view_serialises_its_dates():
    """Dates in the status view are ISO strings, so the body is plain JSON."""
    from video_runner.domain.progress import status_view

    now = datetime(2026, 1, 1, tzinfo=UTC)
    view = status_view({"_id": "e", "status": "ready", "created_at": now, "ready_at": now})
    assert view["created_at"] == "2026-01-01T00:00:00+00:00"
    assert view["progress_percent"] == 100.0
