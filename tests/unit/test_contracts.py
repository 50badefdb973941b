"""Messages on every topic: tolerant parsing, strict ids, stable error codes."""

from __future__ import annotations

import contextlib
import json
import math
import random

import pytest

from video_runner.contracts import (
    DEFAULT_MAX_MESSAGE_BYTES,
    MAX_JSON_DEPTH,
    InferenceTask,
    PredictableEvent,
    ResultLimits,
    event_id_hint,
    parse_inference_result,
    parse_inference_task,
    parse_predictable_event,
    parse_video_event,
    result_message,
)
from video_runner.domain.results import FrameResult, MergedJson, render_merged
from video_runner.errors import ErrorCode, InvalidMessage
from video_runner.settings import load_settings


def _raw(document) -> bytes:
    return json.dumps(document).encode()


def _event(**top) -> bytes:
    payload = top.pop("payload", {"bucket": "videos", "object": "input/abc-1.mp4"})
    return _raw({**top, "payload": payload})


def _code(call) -> ErrorCode:
    with pytest.raises(InvalidMessage) as caught:
        call()
    return caught.value.code


def _code_or_none(call) -> ErrorCode | None:
    """The code ``call`` is refused with, or None when it parses."""
    try:
        call()
    except InvalidMessage as exc:
        return exc.code
    return None


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


def test_an_inference_task_with_a_traversing_event_id_is_rejected_as_bad_id():
    """An event id outside the allowlist is bad_id in a task too, so it never reaches a key."""
    document = {"event_id": "../ev", "frame_id": 0, "bucket": "frames", "object": "f/0.jpg"}
    assert _code(lambda: parse_inference_task(_raw(document))) == ErrorCode.BAD_ID


def test_a_predictable_notice_round_trips_through_its_message():
    """What the runner publishes on predictable_events is what the outbox-S3 worker parses."""
    message = PredictableEvent(event_id="ev-1").as_message()
    assert message == {"event_id": "ev-1", "status": "predictable"}
    assert parse_predictable_event(_raw(message)) == PredictableEvent(event_id="ev-1")


@pytest.mark.parametrize(
    ("document", "code"),
    [
        ({"status": "predictable"}, ErrorCode.SCHEMA),
        ({"event_id": "ev-1", "status": "ready"}, ErrorCode.SCHEMA),
        ({"event_id": 7}, ErrorCode.SCHEMA),
        ({"event_id": "../ev"}, ErrorCode.BAD_ID),
    ],
)
def test_bad_predictable_notices_are_rejected_with_a_stable_code(document, code):
    """No event id, another status, a number for an id or an id outside the allowlist."""
    assert _code(lambda: parse_predictable_event(_raw(document))) == code


# --- parsing that survives any bytes -----------------------------------------------------------

PARSERS = {
    "outbox_event": lambda raw, **kw: parse_video_event(raw, "videos", **kw),
    "inference_task": parse_inference_task,
    "inference_result": parse_inference_result,
    "predictable_event": parse_predictable_event,
}


@pytest.fixture(params=sorted(PARSERS))
def parse(request):
    return PARSERS[request.param]


@pytest.mark.parametrize("raw", [b"[" * 200_000, b'{"a":' * 200_000, b"[" * 5_000 + b"]" * 5_000])
def test_deeply_nested_json_is_too_deep_never_a_recursion_error(parse, raw):
    """Nesting that would overflow the parser's or the validator's stack: too_deep."""
    assert _code(lambda: parse(raw)) == ErrorCode.TOO_DEEP


def test_nesting_just_past_the_depth_limit_is_too_deep(parse):
    """The limit holds below the interpreter's own: 33 levels are refused, 32 are not nesting
    errors (whatever the schema then says)."""
    deep = {
        "event_id": "ev-1",
        "x": json.loads("[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1)),
    }
    too_deep = {"event_id": "ev-1", "x": json.loads("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH)}
    assert _code(lambda: parse(_raw(too_deep))) == ErrorCode.TOO_DEEP
    assert _code_or_none(lambda: parse(_raw(deep))) != ErrorCode.TOO_DEEP


def test_a_message_over_the_size_limit_is_refused_before_decoding(parse):
    """MAX_MESSAGE_BYTES: message_too_large, whatever the bytes are."""
    assert _code(lambda: parse(b"x" * 2048, max_bytes=1024)) == ErrorCode.MESSAGE_TOO_LARGE
    big = b'{"event_id": "' + b"a" * DEFAULT_MAX_MESSAGE_BYTES + b'"}'
    assert _code(lambda: parse(big)) == ErrorCode.MESSAGE_TOO_LARGE


@pytest.mark.parametrize(
    "raw",
    [b"\xff\xfe{}", b'{"event_id": "\xc3\x28"}', b"\xed\xa0\x80", b'{"a": "\\ud800"', b"\x00"],
)
def test_invalid_utf8_and_broken_json_are_bad_json(parse, raw):
    """JSON is UTF-8 text: anything else is bad_json, not a UnicodeDecodeError."""
    assert _code(lambda: parse(raw)) == ErrorCode.BAD_JSON


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999", "-1e400", "1" * 5000])
def test_numbers_that_are_not_finite_json_numbers_are_bad_json(parse, number):
    """json.loads accepts NaN, Infinity and 1e999 (as inf) by default; we never do."""
    raw = f'{{"event_id": "ev-1", "frame_id": 0, "x": {number}}}'.encode()
    assert _code(lambda: parse(raw)) == ErrorCode.BAD_JSON


@pytest.mark.parametrize("document", [[], "text", 42, None, True, [{"event_id": "ev-1"}]])
def test_json_that_is_not_an_object_is_a_schema_error(parse, document):
    """A valid JSON value of the wrong kind: schema."""
    assert _code(lambda: parse(_raw(document))) == ErrorCode.SCHEMA


def test_arbitrary_bytes_never_raise_anything_but_invalid_message(parse):
    """Random and mutated messages: a parsed message or InvalidMessage, nothing else."""
    rng = random.Random(12)
    seeds = [
        _event(event_id="ev-1"),
        _raw({"event_id": "ev-1", "frame_id": 3, "bucket": "frames", "object": "f/3.jpg"}),
        _raw(
            {
                "event_id": "ev-1",
                "frame_id": 3,
                "objects": [{"class": "p", "box": [1, 2, 3, 4], "conf": 0.5}],
            }
        ),
    ]
    for _ in range(3000):
        seed = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            seed[rng.randrange(len(seed))] = rng.randrange(256)
        candidates = [bytes(seed), rng.randbytes(rng.randint(0, 64))]
        for raw in candidates:
            with contextlib.suppress(InvalidMessage):
                parse(raw)


def test_an_invalid_message_carries_its_event_id_for_the_dead_letter():
    """Whatever is wrong after the id was read, the error names the event: no second parse."""
    bad_key = _event(event_id="ev-9", payload={"bucket": "videos", "object": "../x.mp4"})
    with pytest.raises(InvalidMessage) as caught:
        parse_video_event(bad_key, "b")
    assert caught.value.event_id == "ev-9"
    bad_schema = _raw({"_id": "row-3", "payload": {"object": 7}})
    with pytest.raises(InvalidMessage) as caught:
        parse_video_event(bad_schema, "b")
    assert caught.value.event_id == "row-3"
    with pytest.raises(InvalidMessage) as caught:
        parse_video_event(b"{not json", "b")
    assert caught.value.event_id is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (_event(event_id="ev-2"), "ev-2"),
        (_event(payload={"object": "input/abc-1.mp4"}), "abc-1"),
        (_event(event_id="../x"), None),
        (b"[" * 100_000, None),
        (b"\xff", None),
        (None, None),
    ],
)
def test_the_event_id_hint_never_raises(raw, expected):
    """For a dead letter after a handler failed: the valid event id, or None."""
    assert event_id_hint(raw) == expected


# --- strict results ------------------------------------------------------------------------------


def _result(*objects, **extra) -> bytes:
    return _raw({"event_id": "ev-1", "frame_id": 0, "objects": list(objects), **extra})


def _object(box, conf=0.5, cls="person") -> dict:
    return {"class": cls, "box": box, "conf": conf}


@pytest.mark.parametrize("conf", [-0.01, 1.01, 7])
def test_a_confidence_outside_zero_to_one_is_a_schema_error(conf):
    """Confidence is a probability."""
    raw = _result(_object([1, 2, 3, 4], conf=conf))
    assert _code(lambda: parse_inference_result(raw)) == ErrorCode.SCHEMA


def test_confidences_of_exactly_zero_and_one_are_accepted():
    """The bounds are inclusive."""
    parsed = parse_inference_result(_result(_object([1, 2, 3, 4], 0), _object([1, 2, 3, 4], 1)))
    assert [o["conf"] for o in parsed.result.objects] == [0, 1]


def test_boxes_are_clamped_to_the_frame_the_task_named():
    """frame_size from the task: coordinates beyond the frame are pulled back to its edges."""
    raw = _result(_object([-5, -1.5, 700, 300]), _object([10, 20, 30, 40]))
    parsed = parse_inference_result(raw, frame_size=(640, 480))
    assert [o["box"] for o in parsed.result.objects] == [[0, 0, 640, 300], [10, 20, 30, 40]]
    assert parsed.rejected_objects == 0


def test_boxes_are_clamped_to_the_size_the_result_echoes():
    """Without frame_size, the message's own width and height bound the boxes."""
    parsed = parse_inference_result(_result(_object([600, 400, 900, 900]), width=640, height=480))
    assert parsed.result.objects[0]["box"] == [600, 400, 640, 480]


def test_without_a_frame_size_boxes_are_only_clamped_at_zero():
    """The frame's far edges are unknown; its near edges are always 0."""
    parsed = parse_inference_result(_result(_object([-3, 5, 9000, 9000])))
    assert parsed.result.objects[0]["box"] == [0, 5, 9000, 9000]


@pytest.mark.parametrize(
    "box",
    [[700, 10, 800, 20], [10, 500, 20, 600], [30, 10, 20, 20], [10, 10, 10, 20], [-9, -9, -1, -1]],
)
def test_objects_outside_the_frame_or_with_empty_boxes_are_rejected_and_counted(box):
    """Nothing of the box left inside the frame, or an inverted/empty box: dropped, counted."""
    parsed = parse_inference_result(
        _result(_object(box), _object([1, 1, 2, 2])), frame_size=(640, 480)
    )
    assert parsed.result.objects == [_object([1, 1, 2, 2])]
    assert parsed.rejected_objects == 1


def test_objects_with_a_class_name_over_the_limit_are_rejected_and_counted():
    """MAX_CLASS_NAME_LENGTH (inclusive): the long one is dropped, the frame kept."""
    limits = ResultLimits(max_objects=10, max_class_name=5)
    raw = _result(_object([1, 1, 2, 2], cls="abcde"), _object([1, 1, 2, 2], cls="abcdef"))
    parsed = parse_inference_result(raw, limits=limits)
    assert [o["class"] for o in parsed.result.objects] == ["abcde"]
    assert parsed.rejected_objects == 1


def test_a_result_over_the_object_cap_is_refused_with_its_event_id():
    """MAX_OBJECTS_PER_FRAME: too_many_objects, checked before the (costly) schema validation."""
    limits = ResultLimits(max_objects=3, max_class_name=128)
    raw = _result(*[_object([1, 1, 2, 2])] * 4)
    with pytest.raises(InvalidMessage) as caught:
        parse_inference_result(raw, limits=limits)
    assert caught.value.code == ErrorCode.TOO_MANY_OBJECTS
    assert caught.value.event_id == "ev-1"
    assert (
        len(
            parse_inference_result(
                _result(*[_object([1, 1, 2, 2])] * 3), limits=limits
            ).result.objects
        )
        == 3
    )


def test_the_default_limits_match_the_settings():
    """The parsers' defaults are the settings' defaults: a caller passing none is bounded."""
    settings = load_settings()
    assert settings.max_message_bytes == DEFAULT_MAX_MESSAGE_BYTES
    assert ResultLimits() == ResultLimits(
        max_objects=settings.max_objects_per_frame, max_class_name=settings.max_class_name_length
    )


def test_a_result_message_echoes_the_frame_size_for_clamping():
    """width and height travel with the result when the worker knows them."""
    result = FrameResult(frame_id=1, timestamp_ms=None, objects=[_object([1, 2, 300, 4])])
    message = result_message("ev-1", result, width=100, height=50)
    assert (message["width"], message["height"]) == (100, 50)
    assert parse_inference_result(_raw(message)).result.objects[0]["box"] == [1, 2, 100, 4]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_the_merged_json_writer_refuses_numbers_that_are_not_json(bad):
    """Strict JSON out: a NaN that slipped in is an error, never a file strict readers reject."""
    frame = FrameResult(frame_id=0, timestamp_ms=0, objects=[_object([1, 2, 3, 4], conf=bad)])
    with pytest.raises(ValueError, match="JSON compliant"):
        "".join(render_merged({"event_id": "ev-1"}, [frame]))
    with pytest.raises(ValueError, match="JSON compliant"):
        MergedJson({"event_id": "ev-1", "fps": bad}).head()


ALLOWED = frozenset({"videos", "archive-videos"})


def test_an_event_naming_an_allowed_bucket_is_read_from_it():
    """With ALLOWED_SOURCE_BUCKETS=videos,archive-videos an event may name archive-videos."""
    raw = _event(payload={"bucket": "archive-videos", "object": "input/abc-1.mp4"})
    assert parse_video_event(raw, "videos", allowed_buckets=ALLOWED).bucket == "archive-videos"


def test_an_event_naming_a_bucket_outside_the_allowlist_is_bucket_not_allowed():
    """A well-formed bucket that is not allowed is refused, permanently, with the event id kept
    for the dead letter and the allowed buckets named in the message."""
    raw = _event(event_id="ev-9", payload={"bucket": "payroll", "object": "input/a.mp4"})
    with pytest.raises(InvalidMessage) as caught:
        parse_video_event(raw, "videos", allowed_buckets=ALLOWED)
    assert caught.value.code == ErrorCode.BUCKET_NOT_ALLOWED
    assert caught.value.event_id == "ev-9"
    assert "archive-videos, videos" in str(caught.value)


@pytest.mark.parametrize(
    "bucket",
    ["Videos", "under_score", "-videos", "videos-", "vid..eos", "192.168.1.10", "b@d", "a b"],
)
def test_an_event_naming_a_malformed_bucket_is_bad_id_when_an_allowlist_is_set(bucket):
    """A name S3 would never accept is reported as bad_id, not as merely not allowed."""
    raw = _event(event_id="ev-9", payload={"bucket": bucket, "object": "input/a.mp4"})
    with pytest.raises(InvalidMessage) as caught:
        parse_video_event(raw, "videos", allowed_buckets=ALLOWED)
    assert caught.value.code == ErrorCode.BAD_ID
    assert caught.value.event_id == "ev-9"


def test_an_event_without_a_bucket_reads_the_default_bucket_even_outside_the_allowlist():
    """The default bucket (BUCKET_VIDEOS) is the operator's own: it is always allowed."""
    raw = _event(payload={"object": "input/abc-1.mp4"})
    event = parse_video_event(raw, "videos-test", allowed_buckets=frozenset({"videos"}))
    assert event.bucket == "videos-test"
    named = _event(payload={"bucket": "videos-test", "object": "input/abc-1.mp4"})
    assert parse_video_event(named, "videos-test", allowed_buckets=frozenset()).bucket == (
        "videos-test"
    )


def test_without_an_allowlist_any_bucket_is_read_as_before():
    """allowed_buckets=None (the default) checks nothing, so existing callers are unchanged."""
    raw = _event(payload={"bucket": "payroll", "object": "input/a.mp4"})
    assert parse_video_event(raw, "videos").bucket == "payroll"


def test_allowed_source_buckets_is_read_comma_separated_from_the_environment(monkeypatch):
    """ALLOWED_SOURCE_BUCKETS=" videos, archive-videos ,," is the set of the two names."""
    monkeypatch.setenv("ALLOWED_SOURCE_BUCKETS", " videos, archive-videos ,,")
    assert load_settings().source_buckets == frozenset({"videos", "archive-videos"})


def test_allowed_source_buckets_defaults_to_videos(monkeypatch):
    """Without the variable only the bucket named videos may be named by an event."""
    monkeypatch.delenv("ALLOWED_SOURCE_BUCKETS", raising=False)
    assert load_settings().source_buckets == frozenset({"videos"})
