"""The HTTP surface of every process: health, readiness, metrics and (runner) prediction status.

``GET /health`` answers like the seed system's health check; ``/health/live`` says the process
runs; ``/health/ready`` checks each dependency (status and latency) and answers 503 when one is
down; ``/metrics`` is Prometheus text; ``/predictions/{event_id}`` is the runner's status view.
The OpenAPI document is ``video_runner/contracts/openapi.json``, served at ``/openapi.json``.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from video_runner.domain.ids import is_valid_id
from video_runner.domain.progress import status_view
from video_runner.entrypoints import dashboard
from video_runner.errors import RetriableError
from video_runner.runtime import Service
from video_runner.services.client_actions import status_of

SERVICE_KEY = web.AppKey("service", Service)


def _json(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=lambda d: json.dumps(d, default=str))


async def health(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    return _json({"status": "healthy", "service": service.role})


async def live(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    return _json({"status": "alive", "service": service.role})


async def ready(request: web.Request) -> web.Response:
    is_ready, body = await request.app[SERVICE_KEY].readiness()
    return _json(body, status=200 if is_ready else 503)


async def metrics(request: web.Request) -> web.Response:
    body = request.app[SERVICE_KEY].telemetry.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def prediction(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    event_id = request.match_info["event_id"]
    if not is_valid_id(event_id):
        return _json({"error": "invalid event id"}, status=400)
    if service.store is None:
        return _json({"error": "this service keeps no predictions"}, status=404)
    try:
        document = await status_of(service.store, event_id)
    except RetriableError as exc:
        return _json({"error": str(exc)}, status=503)
    if document is None:
        return _json({"error": f"unknown event {event_id}"}, status=404)
    return _json(status_view(document))


async def openapi(_: web.Request) -> web.Response:
    text = resources.files("video_runner.contracts").joinpath("openapi.json").read_text("utf-8")
    return web.Response(text=text, content_type="application/json")


#: Sent with every response, errors included: no type sniffing, no framing, nothing loaded
#: from elsewhere (the dashboard's own inline style and refresh script aside).
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
}


async def _secure(_: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)


def build_app(service: Service) -> web.Application:
    app = web.Application()
    app.on_response_prepare.append(_secure)
    app[SERVICE_KEY] = service
    app.router.add_get("/health", health)
    app.router.add_get("/health/live", live)
    app.router.add_get("/health/ready", ready)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/predictions/{event_id}", prediction)
    app.router.add_get("/openapi.json", openapi)
    dashboard.install(app, service)
    return app


async def start_http(service: Service, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(build_app(service), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner
