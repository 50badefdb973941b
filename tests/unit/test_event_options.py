"""Per-video options in ``payload.options``: validated by the contract, carried on each task."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from video_runner.contracts import (
    InferenceTask,
    OptionsRejected,
    parse_inference_task,
    parse_video_event,
)
from video_runner.contracts.options import EventOptions
from video_runner.domain.detections import keep_wanted
from video_runner.errors import ErrorCode

SCHEMAS = Path(__file__).resolve().parents[2] / "src" / "video_runner" / "contracts"


def _event(options) -> bytes:
    payload = {"object": "input/ev-9.mp4", "options": options}
    return json.dumps({"event_id": "ev-9", "payload": payload}).encode()


def test_options_are_parsed_into_the_event_and_make_its_sampling_plan():
    """fps, range, classes, confidence and tag are read; fps replaces the default every_n."""
    event = parse_video_event(
        _event(
            {
                "fps": 2,
                "start_ms": 1000,
                "end_ms": 5000,
                "classes": ["person", "car"],
                "min_confidence": 0.5,
                "tag": "client text",
            }
        ),
        "videos",
    )
    assert event.options.fps == 2.0
    assert event.options.classes == ["person", "car"]
    plan = event.options.sampling(5)
    assert plan.as_dict() == {"fps": 2.0, "start_ms": 1000, "end_ms": 5000}
    assert event.options.as_document()["tag"] == "client text"


def test_an_event_without_options_keeps_the_defaults():
    """No options (or null) is every FRAME_EVERY_N-th frame, all classes, nothing recorded."""
    event = parse_video_event(_event(None), "videos")
    assert event.options == EventOptions()
    assert event.options.sampling(5).as_dict() == {"every_n": 5}
    assert event.options.as_document() == {}


@pytest.mark.parametrize(
    "options",
    [
        {"fps": 2, "every_n": 5},
        {"fps": 0},
        {"every_n": 0},
        {"every_n": "5"},
        {"start_ms": 5000, "end_ms": 1000},
        {"min_confidence": 1.5},
        {"classes": []},
        {"classes": [""]},
        {"tag": "x" * 257},
        {"unknown": 1},
        "fps=2",
    ],
    ids=[
        "both",
        "zero-fps",
        "zero-n",
        "string-n",
        "range",
        "confidence",
        "no-classes",
        "empty-class",
        "long-tag",
        "unknown",
        "not-object",
    ],
)
def test_a_bad_option_is_refused_as_bad_options_with_the_event_it_belongs_to(options):
    """The error carries the code bad_options, the event id and the event itself."""
    with pytest.raises(OptionsRejected) as caught:
        parse_video_event(_event(options), "videos")
    assert caught.value.code == ErrorCode.BAD_OPTIONS
    assert caught.value.event_id == "ev-9"
    assert caught.value.event.object_key == "input/ev-9.mp4"


def test_a_task_carries_classes_and_confidence_only_when_the_event_set_them():
    """Tasks of events without options are what they always were."""
    plain = InferenceTask(
        event_id="ev-9",
        frame_id=5,
        bucket="frames",
        object_key="frames/ev-9/5.jpg",
        timestamp_ms=200,
        width=64,
        height=48,
    )
    assert "classes" not in plain.as_message()
    filtered = plain.model_copy(update={"classes": ("person",), "min_confidence": 0.5})
    message = filtered.as_message()
    assert message["classes"] == ["person"]
    assert message["min_confidence"] == 0.5
    assert parse_inference_task(json.dumps(message).encode()) == filtered


def test_detections_are_kept_by_class_and_confidence_floor():
    """Only the asked classes at or above the floor; no filter keeps everything."""
    objects = [
        {"class": "person", "box": [0, 0, 1, 1], "conf": 0.9},
        {"class": "person", "box": [0, 0, 1, 1], "conf": 0.4},
        {"class": "dog", "box": [0, 0, 1, 1], "conf": 0.95},
    ]
    assert keep_wanted(objects, ["person"], 0.5) == [objects[0]]
    assert keep_wanted(objects, None, 0.5) == [objects[0], objects[2]]
    assert keep_wanted(objects) == objects
