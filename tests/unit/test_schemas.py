"""The committed JSON Schemas are the message models' own: generated, never edited by hand."""

from __future__ import annotations

import json

import pytest

from video_runner.contracts import InferenceTask, parse_inference_task
from video_runner.contracts.schemas import MODELS, here, schema_text


@pytest.mark.parametrize("name", sorted(MODELS))
def test_each_committed_schema_is_what_its_model_generates(name):
    """A model changed without `make schemas` fails here, naming the file to regenerate."""
    committed = (here() / f"{name}.schema.json").read_text(encoding="utf-8")
    assert committed == schema_text(name), f"run `make schemas`: {name}.schema.json is stale"


def test_a_task_the_reaper_rebuilds_without_a_frame_size_is_read_back():
    """width and height are optional in the model, the schema and the parser alike."""
    task = InferenceTask(
        event_id="ev-1", frame_id=5, bucket="frames", object_key="frames/ev-1/5.jpg"
    )
    message = task.as_message()
    assert message["width"] is None
    assert parse_inference_task(json.dumps(message).encode()) == task
