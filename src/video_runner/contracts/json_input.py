"""Bytes to a JSON value, refusing what a hostile or broken producer could send.

Every refusal is an ``InvalidMessage`` with a stable code, never a ``RecursionError``, a
``UnicodeDecodeError`` or a float that is not a JSON number.
"""

from __future__ import annotations

import json
import math

from video_runner.errors import ErrorCode, InvalidMessage

#: Default of ``MAX_MESSAGE_BYTES``: Kafka's default message limit.
DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024
#: Our messages nest four levels (result > objects > object > box); this leaves ample room and
#: stays far below the interpreter's recursion limit, in the parser and in the validator.
MAX_JSON_DEPTH = 32


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses to inf without ever calling parse_constant
        raise ValueError(f"{text[:40]} is not a finite number")
    return value


def decode_json(raw: bytes | None, *, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> object:
    """Strict JSON of at most ``max_bytes``, finite numbers only, at most ``MAX_JSON_DEPTH`` deep.

    Raises:
        InvalidMessage: ``message_too_large``, ``bad_json`` or ``too_deep``; never anything else.
    """
    if raw is None:
        raise InvalidMessage("message has no value", code=ErrorCode.BAD_JSON)
    if len(raw) > max_bytes:
        raise InvalidMessage(
            f"message is {len(raw)} bytes, above the limit of {max_bytes}",
            code=ErrorCode.MESSAGE_TOO_LARGE,
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidMessage(f"message is not UTF-8: {exc}", code=ErrorCode.BAD_JSON) from exc
    try:
        document = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError as exc:
        raise InvalidMessage("message is nested too deep", code=ErrorCode.TOO_DEEP) from exc
    except ValueError as exc:  # JSONDecodeError, NaN, 1e999, an integer of 5,000 digits
        raise InvalidMessage(f"message is not JSON: {exc}", code=ErrorCode.BAD_JSON) from exc
    if _depth_exceeds(document, MAX_JSON_DEPTH):
        raise InvalidMessage(
            f"message is nested deeper than {MAX_JSON_DEPTH} levels", code=ErrorCode.TOO_DEEP
        )
    return document


def _depth_exceeds(document: object, limit: int) -> bool:
    # Iterative, so that the check itself cannot overflow the stack it protects.
    stack: list[tuple[object, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: list[object] = list(value.values())
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def json_object(document: object, name: str) -> dict[str, object]:
    """The document if it is a JSON object, else ``schema``: every message is one."""
    if not isinstance(document, dict):
        raise InvalidMessage(
            f"{name} must be a JSON object, not {type(document).__name__}", code=ErrorCode.SCHEMA
        )
    return document
