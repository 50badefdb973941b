"""Messages on every topic: tolerant parsing, strict ids, stable error codes."""

from __future__ import annotations

import json

import pytest

from video_runner.contracts import (
    InferenceTask,
    parse_inference_result,
    parse_inference_task,
    parse_video_event,
    result_message,
)
from video_runner.domain.results import FrameResult
from video_runner.errors import ErrorCode, InvalidMessage


def _raw(document) -> bytes:
    return json.dumps(document).encode()


def _event(**top) -> bytes:
    payload = top.pop("payload", {"bucket": "videos", "object": "input/abc-1.mp4"})
    return _raw({**top, "payload": payload})


def _code(call) -> ErrorCode:
    with pytest.raises(InvalidMessage) as caught:
        call()
    return caught.value.code


def test_an_outbox_event_is_read_by_its_event_id():
    """event_id names the event; bucket, object and media type come from the payload."""
    event = parse_video_event(
        _event(
            event_id="ev-1",
            _id="other",
            payload={"bucket": "videos", "object": "input/abc-1.mp4", "media_type": "video/mp4"},
        ),
        "default-bucket",
    )
    assert event.event_id == "ev-1"
    assert event.bucket == "videos"
    assert event.object_key == "input/abc-1.mp4"
    assert event.media_type == "video/mp4"


def test_an_outbox_event_without_event_id_is_named_by_its_underscore_id():
    """Outbox rows exported from MongoDB carry ``_id`` instead."""
    assert parse_video_event(_event(_id="row-7"), "b").event_id == "row-7"


def test_an_outbox_event_with_neither_id_is_named_by_the_object_stem():
    """input/abc-1.mp4 becomes abc-1; the default bucket and media type fill the gaps."""
    event = parse_video_event(_event(payload={"object": "input/abc-1.mp4"}), "videos")
    assert event.event_id == "abc-1"
    assert event.bucket == "videos"
    assert event.media_type == "video"


@pytest.mark.parametrize(
    "bad_id", ["../etc", "a/b", "with space", "a" * 129, "semi;colon", "dot.ted", "ü"]
)
def test_event_ids_outside_the_allowlist_are_rejected_as_bad_id(bad_id):
    """Only letters, digits, '-' and '_', 1 to 128 characters, may become a key or an _id."""
    assert _code(lambda: parse_video_event(_event(event_id=bad_id), "b")) == ErrorCode.BAD_ID


def test_an_id_of_exactly_128_characters_is_accepted():
    """The limit is inclusive."""
    assert parse_video_event(_event(event_id="a" * 128), "b").event_id == "a" * 128


def test_an_object_stem_that_is_not_a_valid_id_is_rejected():
    """input/my video.mp4 would make the id 'my video': bad_id."""
    raw = _event(payload={"object": "input/my video.mp4"})
    assert _code(lambda: parse_video_event(raw, "b")) == ErrorCode.BAD_ID


@pytest.mark.parametrize(
    "key", ["../secret.mp4", "input/../../secret.mp4", "input/..", "/etc/passwd", "a\\b.mp4", "."]
)
def test_object_keys_that_could_escape_a_prefix_are_rejected(key):
    """'..', a leading '/' or a backslash: bad_id, even when the event id is fine."""
    raw = _event(event_id="ev-1", payload={"bucket": "videos", "object": key})
    assert _code(lambda: parse_video_event(raw, "b")) == ErrorCode.BAD_ID


@pytest.mark.parametrize("key", ["input/./a.mp4", "./a.mp4"])
def test_object_keys_with_a_dot_segment_are_rejected(key):
    """A '.' segment is refused like '..' (contracts._checked_key lists both).

    Fails today: PurePosixPath drops '.' segments before the check looks for them, so only the
    key "." itself is refused; the key reaches S3 (and a filesystem-backed gateway) as given.
    """
    raw = _event(event_id="ev-1", payload={"bucket": "videos", "object": key})
    assert _code(lambda: parse_video_event(raw, "b")) == ErrorCode.BAD_ID


@pytest.mark.parametrize("raw", [b"{not json", b"\xff\xfe", b"", None])
def test_values_that_are_not_json_are_bad_json(raw):
    """Not JSON, not UTF-8, empty or absent (a tombstone): bad_json."""
    assert _code(lambda: parse_video_event(raw, "b")) == ErrorCode.BAD_JSON


@pytest.mark.parametrize(
    "document",
    [
        {"event_id": "ev-1"},  # no payload
        {"payload": {"bucket": "videos"}},  # no object
        {"payload": {"object": 42}},  # object not a string
        {"payload": {"object": ""}},  # empty object key
        {"payload": {"object": "a.mp4", "bucket": "ab"}},  # bucket name too short
        {"event_id": 7, "payload": {"object": "a.mp4"}},  # id not a string
        [],  # not an object
        "input/a.mp4",  # not an object
    ],
)
def test_schema_violations_are_schema_errors(document):
    """Valid JSON that does not follow the outbox_event schema: schema."""
    assert _code(lambda: parse_video_event(_raw(document), "b")) == ErrorCode.SCHEMA


def test_an_inference_result_may_name_its_frame_frame():
    """The older inference service sends ``frame``; it is read as frame_id."""
    parsed = parse_inference_result(
        _raw({"event_id": "ev-1", "frame": 15, "objects": [], "model": "old"})
    )
    assert parsed.event_id == "ev-1"
    assert parsed.result == FrameResult(frame_id=15, timestamp_ms=None, objects=[], model="old")


def test_an_inference_result_carries_the_detector_error_shortened():
    """``error`` is kept (at most 1000 characters) and objects default to an empty list."""
    parsed = parse_inference_result(_raw({"event_id": "ev-1", "frame_id": 0, "error": "x" * 5000}))
    assert parsed.result.error == "x" * 1000
    assert parsed.result.objects == []


def test_an_inference_result_without_any_frame_number_is_a_schema_error():
    """frame_id or frame is required."""
    raw = _raw({"event_id": "ev-1", "objects": []})
    assert _code(lambda: parse_inference_result(raw)) == ErrorCode.SCHEMA


def test_an_inference_result_with_a_malformed_object_is_a_schema_error():
    """Each object needs class, a four-number box and conf."""
    raw = _raw({"event_id": "ev-1", "frame_id": 0, "objects": [{"class": "p", "box": [1, 2, 3]}]})
    assert _code(lambda: parse_inference_result(raw)) == ErrorCode.SCHEMA


def test_an_inference_result_with_a_bad_event_id_is_rejected():
    """The result's event id is checked against the allowlist too."""
    raw = _raw({"event_id": "../ev", "frame_id": 0})
    assert _code(lambda: parse_inference_result(raw)) == ErrorCode.BAD_ID


def test_a_result_message_round_trips_through_the_parser():
    """What the inference worker publishes is what the runner reads, error included."""
    result = FrameResult(
        frame_id=10,
        timestamp_ms=400,
        objects=[{"class": "person", "box": [1.0, 2.0, 3.0, 4.0], "conf": 0.5}],
        error="bad_image: truncated",
        model="hog",
    )
    parsed = parse_inference_result(_raw(result_message("ev-1", result)))
    assert parsed.event_id == "ev-1"
    assert parsed.result == result
    assert "error" not in result_message("ev-1", FrameResult(frame_id=1, timestamp_ms=None))


def test_an_inference_task_round_trips_through_its_message():
    """as_message then parse_inference_task gives back the same task."""
    task = InferenceTask(
        event_id="ev-1",
        frame_id=25,
        bucket="frames",
        object_key="frames/ev-1/25.jpg",
        timestamp_ms=1000,
        width=640,
        height=480,
        attempt=2,
    )
    message = task.as_message()
    assert message["object"] == "frames/ev-1/25.jpg"
    assert parse_inference_task(_raw(message)) == task


def test_an_inference_task_defaults_its_attempt_to_zero():
    """attempt is optional; the optional sizes and timestamp may be absent."""
    task = parse_inference_task(
        _raw({"event_id": "ev-1", "frame_id": 0, "bucket": "frames", "object": "frames/ev-1/0.jpg"})
    )
    assert task.attempt == 0
    assert task.width is None
    assert task.timestamp_ms is None


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"object": "../x.jpg"}, ErrorCode.BAD_ID),
        ({"frame_id": -1}, ErrorCode.SCHEMA),
        ({"width": 0}, ErrorCode.SCHEMA),
        ({"bucket": None}, ErrorCode.SCHEMA),
    ],
)
def test_bad_inference_tasks_are_rejected_with_a_stable_code(change, code):
    """Keys that could escape their prefix, negative frames or sizes below 1 never pass."""
    document = {"event_id": "ev-1", "frame_id": 0, "bucket": "frames", "object": "f/0.jpg"}
    assert _code(lambda: parse_inference_task(_raw({**document, **change}))) == code


def test_an_inference_task_with_a_traversing_event_id_is_rejected():
    """The task schema itself pins the event id pattern, so it never reaches a key."""
    document = {"event_id": "../ev", "frame_id": 0, "bucket": "frames", "object": "f/0.jpg"}
    assert _code(lambda: parse_inference_task(_raw(document))) in {
        ErrorCode.SCHEMA,
        ErrorCode.BAD_ID,
    }
