"""The messages on every topic: pydantic models, the JSON Schemas generated from them, parsing.

docs/contracts.md describes them for people; the models are what the code validates against and
the ``*.schema.json`` files beside them are generated from them (``contracts/schemas.py``).
Parsing survives any bytes: every parser raises ``InvalidMessage`` with a stable code and nothing
else, whatever it is given:

=====================  =======================================================================
``message_too_large``  over ``max_bytes`` (``MAX_MESSAGE_BYTES``), checked before decoding
``bad_json``           no value (a tombstone), not UTF-8, not JSON, or NaN/Infinity/1e999
``too_deep``           nested deeper than ``MAX_JSON_DEPTH`` (never a ``RecursionError``)
``schema``             not an object, or not what the topic's schema says
``bad_id``             an id, an object key or a bucket name outside the allowlist
``bucket_not_allowed`` an event naming a bucket outside ``ALLOWED_SOURCE_BUCKETS``
``too_many_objects``   a result with more than ``max_objects`` (``MAX_OBJECTS_PER_FRAME``)
=====================  =======================================================================

The error carries the message's ``event_id`` when one could be read, so the dead-letter path
never parses the bytes a second time. Results are strict: finite numbers only, confidences in
[0, 1], boxes clamped to the frame when its size is known; objects whose box lies outside the
frame or whose class name is too long are dropped and counted in ``rejected_objects``.
"""

from __future__ import annotations

from typing import Any

from video_runner.contracts.inference_result import (
    DetectedObject,
    InferenceResult,
    ResultLimits,
    ResultMessage,
    parse_inference_result,
    result_message,
)
from video_runner.contracts.inference_task import InferenceTask, parse_inference_task
from video_runner.contracts.json_input import DEFAULT_MAX_MESSAGE_BYTES, MAX_JSON_DEPTH, decode_json
from video_runner.contracts.names import event_id_in
from video_runner.contracts.outbox_event import (
    OptionsRejected,
    OutboxEvent,
    VideoEvent,
    parse_video_event,
)
from video_runner.errors import InvalidMessage


def event_id_hint(raw: bytes | None, *, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> str | None:
    """The valid event id in a message, or None; never raises, whatever the bytes.

    For the rare dead letter of a message whose parse succeeded but whose handling failed: a
    failed parse already hands it over in ``InvalidMessage.event_id``.
    """
    try:
        document = decode_json(raw, max_bytes=max_bytes)
    except InvalidMessage:
        return None
    return event_id_in(document) if isinstance(document, dict) else None


def raw_payload(raw: bytes | None, *, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> dict[str, Any]:
    """The ``payload`` object of a message as given (``{}`` if there is none); never raises."""
    try:
        document = decode_json(raw, max_bytes=max_bytes)
    except InvalidMessage:
        return {}
    payload = document.get("payload") if isinstance(document, dict) else None
    return payload if isinstance(payload, dict) else {}


__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "MAX_JSON_DEPTH",
    "DetectedObject",
    "InferenceResult",
    "InferenceTask",
    "OptionsRejected",
    "OutboxEvent",
    "ResultLimits",
    "ResultMessage",
    "VideoEvent",
    "decode_json",
    "event_id_hint",
    "parse_inference_result",
    "parse_inference_task",
    "parse_video_event",
    "raw_payload",
    "result_message",
]
