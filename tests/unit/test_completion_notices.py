"""Completion notices: one per terminal move, across races and crashes; webhooks signed, retried."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pydantic
import pytest

from support.fakes import (
    FakeClock,
    FakeNoticeLog,
    FakeObjectStore,
    FakePredictionStore,
    FakeWebhooks,
    RecordingTelemetry,
    config_of,
)
from support.worlds import (
    VideoWorld,
    extracted_frames,
    outbox_message,
    outbox_worker,
    seed_predictable,
)
from video_runner.bootstrap import configs
from video_runner.contracts.notice import (
    FailedNotice,
    ReadyNotice,
    notice_for,
    parse_notice,
)
from video_runner.contracts.options import EventOptions
from video_runner.domain.compact_json import compact_json
from video_runner.domain.signature import SIGNATURE_HEADER, sign, verify
from video_runner.domain.status import Status
from video_runner.errors import DependencyUnavailable
from video_runner.services.notices import Notices
from video_runner.services.outbox_s3 import OutboxS3

TOPIC = "prediction_events"
SECRET = b"s3cr3t"
T0 = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


def _notices(store, notice_log, webhooks=None, telemetry=None, **webhook) -> Notices:
    """Notices on ``TOPIC`` with a signing secret and millisecond retries, unless ``webhook``
    (``WebhookConfig`` fields) says otherwise."""
    delivery = config_of(
        configs.webhook_config,
        **{"secret": SECRET, "retry_initial_s": 0.001, "retry_max_s": 0.002, **webhook},
    )
    return Notices(
        config_of(configs.notice_config, topic=TOPIC, grace_s=60.0, webhooks=delivery),
        store=store,
        notice_log=notice_log,
        webhooks=webhooks,
        telemetry=telemetry or RecordingTelemetry(),
        clock=store.clock,
    )


def _outbox(store, notices, tmp_path) -> OutboxS3:
    return outbox_worker(
        store, FakeObjectStore(), tmp_path, notices=notices, keep_frame_documents=True
    )


def _failing(store: FakePredictionStore, event_id: str = "ev-f", **options) -> None:
    store.put(event_id, Status.PROCESSING, options=options, created_at=T0)


async def _fail(store, notices, event_id: str = "ev-f") -> bool:
    fields = {"error": {"code": "corrupt", "message": "bad packet"}, "failed_at": T0}
    moved = await store.transition(event_id, Status.FAILED, fields)
    if moved:
        await notices.announce(event_id, Status.FAILED)
    return moved


def _later(store: FakePredictionStore, seconds: float = 61.0) -> datetime:
    return store.clock() + timedelta(seconds=seconds)


async def test_two_outbox_replicas_finishing_one_event_publish_exactly_one_ready_notice(tmp_path):
    """Both write the JSON; one wins ready and publishes; the marker is gone, the claim marked."""
    store, notice_log = FakePredictionStore(), FakeNoticeLog()
    await seed_predictable(store, "ev-1", frames=4)
    notices = _notices(store, notice_log)
    moved = await asyncio.gather(
        _outbox(store, notices, tmp_path).finish("ev-1"),
        _outbox(store, notices, tmp_path).finish("ev-1"),
    )
    assert sorted(moved) == [False, True]
    [(key, notice)] = notice_log.messages(TOPIC)
    assert key == "ev-1"
    assert notice["notice_id"] == "ev-1/ready"
    assert notice["detections"] == {"person": 2}
    assert notice["models"] == ["yolov4-tiny@abc.c1"]
    assert notice["frames"] == 4
    assert store.notices == {}
    assert (await store.read_notice("ev-1", Status.READY)).notified_at is not None
    assert await notices.sweep(_later(store, 3600)) == 0
    assert len(notice_log.messages(TOPIC)) == 1


async def test_two_callers_racing_to_fail_an_event_announce_it_once():
    """Only the caller whose claim won publishes; the loser's call publishes nothing."""
    store, notice_log = FakePredictionStore(), FakeNoticeLog()
    _failing(store)
    notices = _notices(store, notice_log)
    moved = await asyncio.gather(_fail(store, notices), _fail(store, notices))
    assert sorted(moved) == [False, True]
    assert [m[1]["notice_id"] for m in notice_log.messages(TOPIC)] == ["ev-f/failed"]


async def test_a_winner_that_dies_before_publishing_is_made_up_for_by_the_sweep_once():
    """The claim holds the notice unmarked; after the grace one sweep publishes it, later sweeps
    publish nothing more."""
    clock = FakeClock()
    store, notice_log = FakePredictionStore(clock), FakeNoticeLog()
    telemetry = RecordingTelemetry()
    _failing(store)
    notices = _notices(store, notice_log, telemetry=telemetry)
    # The winner dies right after the move: no announce.
    assert await store.transition("ev-f", Status.FAILED, {"failed_at": T0, "error": {}})
    assert await notices.sweep(clock.now) == 0  # within the grace period: left alone
    assert await notices.sweep(_later(store)) == 1
    assert await notices.sweep(_later(store, 3600)) == 0
    assert [m[1]["notice_id"] for m in notice_log.messages(TOPIC)] == ["ev-f/failed"]
    assert telemetry.total("notices_republished") == 1
    assert store.notices == {}


async def test_a_notice_acknowledged_before_the_crash_is_found_in_its_partition_not_resent():
    """The broker stored it but the mark never happened: the sweep reads the partition from the
    recorded offset, finds the notice id, and only marks the claim."""
    clock = FakeClock()
    store, notice_log = FakePredictionStore(clock), FakeNoticeLog()
    telemetry = RecordingTelemetry()
    _failing(store)
    notices = _notices(store, notice_log, telemetry=telemetry)
    notice_log.lose_next_ack()
    assert await _fail(store, notices)
    claim = await store.read_notice("ev-f", Status.FAILED)
    assert claim.notified_at is None
    assert claim.log_position is not None
    assert claim.log_position.offset == 0
    assert await notices.sweep(_later(store)) == 1
    assert len(notice_log.messages(TOPIC)) == 1
    assert notice_log.searches == 1
    assert telemetry.total("notices_found_published") == 1
    assert telemetry.total("notices_republished") == 0
    assert (await store.read_notice("ev-f", Status.FAILED)).notified_at is not None


async def test_a_send_that_never_reached_the_broker_is_published_by_the_sweep_after_a_search():
    """Offset recorded, publish refused: the search finds nothing past it, so the sweep sends."""
    clock = FakeClock()
    store, notice_log = FakePredictionStore(clock), FakeNoticeLog()
    _failing(store)
    notices = _notices(store, notice_log)
    original = notice_log.publish_at

    async def refused(*args, **kwargs):
        notice_log.publish_at = original
        raise DependencyUnavailable("kafka", "fake: not answering")

    notice_log.publish_at = refused
    assert await _fail(store, notices)
    assert notice_log.messages(TOPIC) == []
    assert (await store.read_notice("ev-f", Status.FAILED)).log_position is not None
    assert await notices.sweep(_later(store)) == 1
    assert notice_log.searches == 1
    assert [m[1]["notice_id"] for m in notice_log.messages(TOPIC)] == ["ev-f/failed"]


async def test_two_sweepers_of_one_pending_notice_publish_it_once():
    """Several outbox-S3 replicas sweep the same markers: a claim per attempt picks one."""
    clock = FakeClock()
    store, notice_log = FakePredictionStore(clock), FakeNoticeLog()
    _failing(store)
    assert await store.transition("ev-f", Status.FAILED, {"failed_at": T0, "error": {}})
    first, second = _notices(store, notice_log), _notices(store, notice_log)
    done = await asyncio.gather(first.sweep(_later(store)), second.sweep(_later(store)))
    assert sorted(done) == [0, 1]
    assert len(notice_log.messages(TOPIC)) == 1


async def test_a_sweeper_that_dies_mid_repair_leaves_the_next_attempt_to_another():
    """The attempt's claim is taken but nothing published: after another grace period the next
    attempt number is free, and the notice goes out once."""
    clock = FakeClock()
    store, notice_log = FakePredictionStore(clock), FakeNoticeLog()
    _failing(store)
    assert await store.transition("ev-f", Status.FAILED, {"failed_at": T0, "error": {}})
    assert await store.claim("ev-f", "notice-failed-0")  # a sweeper that died right after
    await store.update_pending("ev-f/failed", {"attempts": 1, "at": clock.now})
    notices = _notices(store, notice_log)
    assert await notices.sweep(clock.advance(10)) == 0
    assert await notices.sweep(clock.advance(61)) == 1
    assert len(notice_log.messages(TOPIC)) == 1


async def test_a_sweeper_that_dies_between_its_claim_and_anything_else_does_not_block_the_marker():
    """Attempt 0 claimed, the marker untouched (still attempt 0): a later sweep still publishes."""
    clock = FakeClock()
    store, notice_log = FakePredictionStore(clock), FakeNoticeLog()
    _failing(store)
    assert await store.transition("ev-f", Status.FAILED, {"failed_at": T0, "error": {}})
    assert await store.claim("ev-f", "notice-failed-0")  # a sweeper that died right after
    notices = _notices(store, notice_log)
    assert await notices.sweep(clock.advance(61)) == 0  # attempt 0 is taken: the marker moves on
    assert await notices.sweep(clock.advance(61)) == 1
    assert len(notice_log.messages(TOPIC)) == 1


async def test_a_marker_of_a_move_lost_to_another_is_dropped_without_a_notice():
    """failed raced predictable and lost: the finish claim holds no failed notice."""
    clock = FakeClock()
    store, notice_log = FakePredictionStore(clock), FakeNoticeLog()
    _failing(store)
    assert await store.transition("ev-f", Status.PREDICTABLE, {"predictable_at": T0})
    store.documents["ev-f"]["status"] = Status.PROCESSING.value  # the failing caller read this
    assert not await store.transition("ev-f", Status.FAILED, {"failed_at": T0, "error": {}})
    assert "ev-f/failed" in store.notices
    assert await _notices(store, notice_log).sweep(_later(store)) == 1
    assert store.notices == {}
    assert notice_log.messages(TOPIC) == []


async def test_the_sweep_reads_only_pending_notices():
    """Finished notices leave no marker: a sweep over many ended events scans one small set."""
    store, notice_log = FakePredictionStore(), FakeNoticeLog()
    notices = _notices(store, notice_log)
    for n in range(20):
        _failing(store, f"ev-{n}")
        assert await _fail(store, notices, f"ev-{n}")
    assert store.notices == {}
    assert await notices.sweep(_later(store)) == 0
    assert store.notice_scans == 1


def test_a_ready_notice_carries_output_frames_detections_models_durations_and_tag():
    """Durations are the gaps between the document's timestamps, in milliseconds."""
    document = {
        "_id": "ev-1",
        "status": "predictable",
        "options": {"tag": "job 7"},
        "created_at": T0,
        "extracted_at": T0 + timedelta(seconds=2),
        "predictable_at": T0 + timedelta(seconds=5),
        "total_frames": 10,
        "failed_frames": 1,
    }
    fields = {
        "ready_at": T0 + timedelta(seconds=5, milliseconds=250),
        "output_s3": "s3://videos/detection/ev-1.json",
        "detections": {"person": 3, "car": 1},
        "models": ["yolov4-tiny@abc.c1"],
    }
    notice = notice_for(document, Status.READY, fields)
    assert isinstance(notice, ReadyNotice)
    assert notice.notice_id == "ev-1/ready"
    assert notice.tag == "job 7"
    assert notice.output_s3 == "s3://videos/detection/ev-1.json"
    assert (notice.frames, notice.failed_frames) == (10, 1)
    assert notice.detections == {"person": 3, "car": 1}
    assert notice.models == ["yolov4-tiny@abc.c1"]
    assert notice.durations.model_dump() == {
        "total_ms": 5250,
        "extraction_ms": 2000,
        "inference_ms": 3000,
        "output_ms": 250,
    }
    assert parse_notice(compact_json(notice.model_dump(mode="json"))) == notice


def test_a_failed_notice_carries_the_error_code_reason_and_tag():
    """No output, no detections: the code and the reason, as on the document."""
    document = {"_id": "ev-2", "status": "processing", "options": {"tag": "t"}, "created_at": T0}
    fields = {"failed_at": T0, "error": {"code": "corrupt", "message": "bad packet"}}
    notice = notice_for(document, Status.FAILED, fields)
    assert isinstance(notice, FailedNotice)
    assert notice.model_dump(mode="json")["error"] == {"code": "corrupt", "message": "bad packet"}
    assert notice.tag == "t"
    assert notice_for(document, Status.PREDICTABLE, {}) is None


def test_a_notice_with_an_unknown_field_is_refused():
    """extra=forbid: the contract is closed, like every other message model."""
    notice = notice_for({"_id": "e", "created_at": T0}, Status.FAILED, {"failed_at": T0})
    assert notice is not None
    with pytest.raises(pydantic.ValidationError):
        parse_notice({**notice.model_dump(mode="json"), "extra": 1})


# -- webhooks ---------------------------------------------------------------------------------

URL = "http://hooks.example/done"


async def test_a_webhook_is_posted_signed_and_retried_after_a_500():
    """Body = the notice's bytes, the HMAC-SHA256 of those bytes in X-Signature-SHA256; after a
    500 the second POST is delivered, and the document says so."""
    store, notice_log, webhooks = FakePredictionStore(), FakeNoticeLog(), FakeWebhooks(500, 200)
    _failing(store, callback_url=URL)
    notices = _notices(store, notice_log, webhooks)
    assert await _fail(store, notices)
    await notices.drain()
    assert len(webhooks.posts) == 2
    url, body, headers = webhooks.posts[1]
    assert url == URL
    assert verify(SECRET, body, headers[SIGNATURE_HEADER])
    assert headers[SIGNATURE_HEADER] == sign(SECRET, body)
    assert json.loads(body) == notice_log.messages(TOPIC)[0][1]
    assert store.documents["ev-f"]["webhook"] == {
        "state": "delivered",
        "attempts": 2,
        "last_status": 200,
        "last_error": None,
    }
    assert store.notices == {}


async def test_a_webhook_answered_4xx_is_not_retried():
    """A 404 is final: one POST, state failed with its status."""
    store, notice_log, webhooks = FakePredictionStore(), FakeNoticeLog(), FakeWebhooks(404)
    _failing(store, callback_url=URL)
    notices = _notices(store, notice_log, webhooks)
    assert await _fail(store, notices)
    await notices.drain()
    assert len(webhooks.posts) == 1
    assert store.documents["ev-f"]["webhook"]["state"] == "failed"
    assert store.documents["ev-f"]["webhook"]["last_status"] == 404


@pytest.mark.parametrize("status", [429, 408])
async def test_a_webhook_told_to_try_later_is_retried_like_a_5xx(status):
    """429 Too Many Requests and 408 Request Timeout ask for a later try: the second POST is
    delivered, and the attempt counts as a retry, not a refusal."""
    store, notice_log, webhooks = FakePredictionStore(), FakeNoticeLog(), FakeWebhooks(status, 204)
    telemetry = RecordingTelemetry()
    _failing(store, callback_url=URL)
    notices = _notices(store, notice_log, webhooks, telemetry)
    assert await _fail(store, notices)
    await notices.drain()
    assert len(webhooks.posts) == 2
    assert store.documents["ev-f"]["webhook"]["state"] == "delivered"
    assert telemetry.total("webhook_attempts", outcome="retry") == 1
    assert telemetry.total("webhook_attempts", outcome="refused") == 0


async def test_a_webhook_that_never_answers_fails_after_its_attempts_and_blocks_nothing():
    """Connection errors are retried up to WEBHOOK_MAX_ATTEMPTS; meanwhile other notices go out."""
    store, notice_log = FakePredictionStore(), FakeNoticeLog()
    webhooks = FakeWebhooks(None, None, None, None)
    _failing(store, callback_url=URL)
    _failing(store, "ev-g")
    notices = _notices(store, notice_log, webhooks, max_attempts=3)
    assert await _fail(store, notices)
    assert await _fail(store, notices, "ev-g")  # announced while the webhook still retries
    assert [m[1]["event_id"] for m in notice_log.messages(TOPIC)] == ["ev-f", "ev-g"]
    await notices.drain()
    assert len(webhooks.posts) == 3
    webhook = store.documents["ev-f"]["webhook"]
    assert (webhook["state"], webhook["attempts"], webhook["last_status"]) == ("failed", 3, None)
    assert "connection refused" in webhook["last_error"]


async def test_a_webhook_cut_off_by_a_crash_is_resumed_by_the_sweep():
    """The process stopped after one 503: the marker stays pending; a sweep after the grace
    period resumes the delivery, counting on from the attempts already made."""
    clock = FakeClock()
    store, notice_log = FakePredictionStore(clock), FakeNoticeLog()
    webhooks = FakeWebhooks(503, default=503)
    _failing(store, callback_url=URL)
    dying = _notices(store, notice_log, webhooks, retry_initial_s=30, retry_max_s=30)
    assert await _fail(store, dying)
    for _ in range(100):  # until its first attempt is recorded
        if store.documents["ev-f"].get("webhook") is not None:
            break
        await asyncio.sleep(0)
    await dying.close()
    assert store.documents["ev-f"]["webhook"]["state"] == "pending"
    webhooks.default = 204
    survivor = _notices(store, notice_log, webhooks)
    assert await survivor.sweep(_later(store)) == 1
    await survivor.drain()
    assert store.documents["ev-f"]["webhook"]["state"] == "delivered"
    assert store.documents["ev-f"]["webhook"]["attempts"] == 2
    assert len(notice_log.messages(TOPIC)) == 1
    assert store.notices == {}


# -- the callback_url allowlist -----------------------------------------------------------------


def _world_with_hosts(tmp_path, hosts: str):
    """A video world whose ``WEBHOOK_ALLOWED_HOSTS`` is ``hosts``."""
    world = VideoWorld(tmp_path, extracted_frames(2), webhook_allowed_hosts=hosts)
    return world, world.notices, world.notice_log, world.webhooks


def _with_callback(url: str):
    payload = {"object": "input/ev-1.mp4", "options": {"callback_url": url, "tag": "x"}}
    return outbox_message({"event_id": "ev-1", "payload": payload})


async def test_a_callback_url_whose_host_is_not_allowed_fails_the_event_with_bad_options(tmp_path):
    """Refused before any download, dead-lettered, failed with bad_options; the URL is never
    called and the failed notice still goes to prediction_events."""
    world, notices, notice_log, webhooks = _world_with_hosts(tmp_path, "hooks.example")
    await world.path.handle(_with_callback("https://elsewhere.example/hook"))
    await notices.drain()
    document = world.store.document("ev-1")
    assert document["status"] == Status.FAILED
    assert document["error"]["code"] == "bad_options"
    assert "elsewhere.example" in document["error"]["message"]
    assert "callback_url" not in document["options"]
    assert world.objects.downloads == []
    assert [s.headers["error_code"] for s in world.dead_letters()] == ["bad_options"]
    assert webhooks.posts == []
    assert notice_log.messages(TOPIC)[0][1]["error"]["code"] == "bad_options"


async def test_with_no_allowed_hosts_every_callback_url_is_refused(tmp_path):
    """WEBHOOK_ALLOWED_HOSTS is empty by default: no event may name a webhook."""
    world, *_ = _world_with_hosts(tmp_path, "")
    await world.path.handle(_with_callback("http://hooks.example/done"))
    assert (await world.store.get("ev-1")).error["code"] == "bad_options"


async def test_a_callback_url_on_an_allowed_host_is_kept_with_the_options(tmp_path):
    """The host matches case-insensitively, on the port its entry names; the event is
    processed."""
    world, *_ = _world_with_hosts(tmp_path, "hooks.example:8080")
    await world.path.handle(_with_callback("http://HOOKS.example:8080/done"))
    document = world.store.document("ev-1")
    assert document["status"] == Status.PROCESSING
    assert document["options"]["callback_url"] == "http://HOOKS.example:8080/done"


@pytest.mark.parametrize(
    "url", ["ftp://hooks.example/x", "http://user:pw@hooks.example/x", "http:///x", "hooks"]
)
def test_a_callback_url_that_is_not_a_plain_http_url_breaks_the_options_schema(url):
    """Only http(s), a host, no credentials in the URL."""
    with pytest.raises(pydantic.ValidationError):
        EventOptions.model_validate({"callback_url": url})
