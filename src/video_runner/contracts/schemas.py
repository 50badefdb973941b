"""The committed ``*.schema.json`` files, generated from the message models.

``python -m video_runner.contracts.schemas`` (``make schemas``) rewrites them; a unit test fails
when a committed file differs from what the models generate, so the two never drift.
"""

from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

from video_runner.contracts.inference_result import InferenceResult
from video_runner.contracts.inference_task import InferenceTask
from video_runner.contracts.notice import PREDICTION_NOTICE
from video_runner.contracts.options import EventOptions
from video_runner.contracts.outbox_event import OutboxEvent
from video_runner.contracts.predictable_event import PredictableEvent
from video_runner.contracts.reinfer_event import ReinferEvent
from video_runner.contracts.video_segment import SegmentTask

#: What a schema file describes: a model, or the type adapter of a union of models (a message
#: that is one of several shapes, such as a completion notice).
Contract = type[BaseModel] | TypeAdapter[Any]

#: File stem -> the contract whose JSON Schema it holds.
MODELS: dict[str, Contract] = {
    "event_options": EventOptions,
    "inference_result": InferenceResult,
    "inference_task": InferenceTask,
    "outbox_event": OutboxEvent,
    "predictable_event": PredictableEvent,
    "prediction_notice": PREDICTION_NOTICE,
    "reinfer_event": ReinferEvent,
    "video_segment": SegmentTask,
}


def schema_of(name: str) -> dict[str, Any]:
    """The JSON Schema ``{name}.schema.json`` should hold: what the parser accepts."""
    contract = MODELS[name]
    head: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"video-runner/{name}",
    }
    if isinstance(contract, TypeAdapter):
        # A union has no title of its own: it takes the file's name (prediction_notice ->
        # PredictionNotice), as a model's schema takes the model's.
        head["title"] = "".join(part.capitalize() for part in name.split("_"))
        return {**head, **contract.json_schema(by_alias=True)}
    return {**head, **contract.model_json_schema(by_alias=True)}


def schema_text(name: str) -> str:
    return json.dumps(schema_of(name), indent=2, ensure_ascii=False) + "\n"


def here() -> Path:
    return Path(str(resources.files(__package__)))


def write_all(directory: Path) -> list[str]:
    """Rewrite every schema file in ``directory``; the names of those that changed."""
    changed = []
    for name in MODELS:
        path = directory / f"{name}.schema.json"
        text = schema_text(name)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(name)
    return changed


if __name__ == "__main__":
    for name in write_all(here()):
        sys.stdout.write(f"rewrote {name}.schema.json\n")
