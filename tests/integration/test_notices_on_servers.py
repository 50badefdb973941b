"""Completion notices and webhooks on the real stack: Kafka's partitions, MongoDB, a real HTTP
receiver."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from support.documents import stored_document
from support.stack import create_topic, publish, read_topic, running, store_of, wait_for
from video_runner import bootstrap
from video_runner.adapters.kafka import KafkaNoticeLog
from video_runner.adapters.metrics import PrometheusTelemetry
from video_runner.adapters.webhook import HttpWebhookSender
from video_runner.bootstrap.services import completion_notices
from video_runner.domain.signature import SIGNATURE_HEADER, verify
from video_runner.domain.status import Status

SECRET = "integration-secret"


@pytest.fixture
async def store(settings):
    store = store_of(settings)
    yield store
    await store.close()


@pytest.fixture
async def publisher(settings):
    publisher = bootstrap.publisher(settings, "test")
    await publisher.start()
    yield publisher
    await publisher.stop()


def _counted(telemetry: PrometheusTelemetry, name: str) -> float:
    text = telemetry.render().decode()
    lines = [line for line in text.splitlines() if line.startswith(f"video_runner_{name}_total")]
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines)


async def _failed_event(store, event_id: str, **options) -> None:
    fields = {"source": {"bucket": "videos", "object": f"input/{event_id}.mp4"}}
    assert await store.begin(event_id, {**fields, "options": options})
    moved = await store.transition(
        event_id,
        Status.FAILED,
        {"failed_at": datetime.now(UTC), "error": {"code": "corrupt", "message": "bad packet"}},
    )
    assert moved


async def _notices_on(settings, records):
    return [
        (r.key.decode(), json.loads(r.value))
        for r in records
        if r.topic == settings.topic_prediction_events
    ]


async def test_the_sweep_finds_a_notice_acknowledged_before_a_crash_and_sends_a_lost_one_once(
    settings, store, publisher
):
    """Event A: offset recorded and the notice acknowledged, then a crash before the mark: the
    sweep finds it in its partition from that offset and only marks it. Event B: the crash came
    before publishing: the sweep publishes it. One message per notice on the topic."""
    await create_topic(settings, settings.topic_prediction_events, 4)
    telemetry = PrometheusTelemetry()
    log = KafkaNoticeLog(bootstrap.kafka_connection(settings, "test"), publisher)
    notices = completion_notices(
        settings,
        store=store,
        notice_log=log,
        webhooks=HttpWebhookSender(5.0),  # never used: no event here names a webhook
        telemetry=telemetry,
    )
    try:
        topic = settings.topic_prediction_events
        for event_id in ("found-a", "lost-b"):
            await _failed_event(store, event_id)
        # A, by hand: the winner's steps up to the broker's acknowledgement, not the mark.
        claim = await store.read_notice("found-a", Status.FAILED)
        partition = await log.partition_for(topic, "found-a")
        start = await log.end_offset(topic, partition)
        await store.set_notice(
            "found-a", Status.FAILED, {"log_position": {"partition": partition, "offset": start}}
        )
        delivery = await log.publish_at(topic, partition, "found-a", claim.notice)
        assert delivery.offset >= start
        # Other traffic on the same partition after it: the search reads past it, not only at it.
        await log.publish_at(topic, partition, "someone-else", {"notice_id": "someone-else/ready"})

        later = datetime.now(UTC) + timedelta(seconds=settings.completion_notice_grace_s + 1)
        assert await notices.sweep(later) == 2
        assert _counted(telemetry, "notices_found_published") == 1
        assert _counted(telemetry, "notices_republished") == 1
        assert (await store.read_notice("found-a", Status.FAILED)).notified_at is not None
        assert await store.pending_notices(later) == []

        records = await read_topic(settings, topic, until=lambda rs: len(rs) >= 3, timeout_s=30)
        keys = sorted(key for key, _ in await _notices_on(settings, records))
        assert keys == ["found-a", "lost-b", "someone-else"]
        assert await notices.sweep(later + timedelta(hours=1)) == 0
    finally:
        await notices.close()


class _Receiver(BaseHTTPRequestHandler):
    """Answers 500 to the first POST, 204 after; keeps what it got."""

    got: ClassVar[list[tuple[bytes, dict[str, str]]]] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).got.append((body, dict(self.headers)))
        self.send_response(500 if len(type(self).got) == 1 else 204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    handler = type("Receiver", (_Receiver,), {"got": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, handler
    server.shutdown()
    server.server_close()


async def test_a_webhook_reaches_a_real_http_server_signed_and_is_retried_after_a_500(
    tmp_path, receiver
):
    """The receiver checks the signature over the exact bytes it got; the first answer is 500,
    the second 204; the document records delivered after two attempts."""
    from support.stack import isolated_settings

    server, handler = receiver
    settings = isolated_settings(
        tmp_path / "work",
        # An allowlist entry names the port too; a host alone would allow 80 and 443 only.
        webhook_allowed_hosts=f"127.0.0.1:{server.server_address[1]}",
        webhook_secret=SECRET,
        webhook_retry_initial_s=0.05,
        webhook_retry_max_s=0.1,
    )
    await create_topic(settings, settings.topic_prediction_events, 4)
    store = store_of(settings)
    publisher = bootstrap.publisher(settings, "test")
    await publisher.start()
    webhooks = HttpWebhookSender(5.0)
    notices = completion_notices(
        settings,
        store=store,
        notice_log=KafkaNoticeLog(bootstrap.kafka_connection(settings, "test"), publisher),
        webhooks=webhooks,
        telemetry=PrometheusTelemetry(),
    )
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/done"
        await _failed_event(store, "hooked", callback_url=url, tag="job 9")
        await notices.announce("hooked", Status.FAILED)
        await notices.drain()
        document = await stored_document(store, "hooked")
    finally:
        await notices.close()
        await webhooks.close()
        await publisher.stop()
        await store.close()
    assert len(handler.got) == 2
    body, headers = handler.got[1]
    assert verify(SECRET.encode(), body, headers[SIGNATURE_HEADER])
    assert handler.got[0][0] == body
    notice = json.loads(body)
    assert (notice["notice_id"], notice["tag"]) == ("hooked/failed", "job 9")
    assert notice["error"] == {"code": "corrupt", "message": "bad packet"}
    assert document["webhook"] == {
        "state": "delivered",
        "attempts": 2,
        "last_status": 204,
        "last_error": None,
    }


@pytest.mark.timeout(120)
async def test_a_callback_url_on_a_host_off_the_allowlist_fails_the_event_with_bad_options(
    settings, store
):
    """Through the runner process: dead-lettered as bad_options, the event failed with that
    code, and its failed notice on prediction_events."""
    payload = {
        "object": "input/hook-refused.mp4",
        "options": {"callback_url": "http://not-listed.example/hook"},
    }
    async with running(bootstrap.Runner(settings)):
        await publish(
            settings,
            settings.topic_outbox_events,
            "hook-refused",
            {"event_id": "hook-refused", "payload": payload},
        )

        async def failed():
            document = await stored_document(store, "hook-refused")
            return document if document and document["status"] == "failed" else None

        document = await wait_for(failed, timeout_s=60)
        records = await read_topic(
            settings,
            settings.topic_prediction_events,
            until=lambda rs: len(rs) >= 1,
            timeout_s=30,
        )
    assert document["error"]["code"] == "bad_options"
    assert "not-listed.example" in document["error"]["message"]
    [(key, notice)] = await _notices_on(settings, records)
    assert key == "hook-refused"
    assert notice["status"] == "failed"
    assert notice["error"]["code"] == "bad_options"
    dlq = await read_topic(
        settings,
        settings.dlq_topic(settings.topic_outbox_events),
        until=lambda rs: len(rs) >= 1,
        timeout_s=30,
    )
    assert [dict(r.headers)["error_code"] for r in dlq] == [b"bad_options"]
    await asyncio.sleep(0)
