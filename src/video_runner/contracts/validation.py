"""A JSON object to a message model: one ``schema`` error naming where, never a pydantic error.

The models are strict (no string read as a number, no number as a string), as the JSON Schemas
generated from them say. ``null`` for an optional field reads as the field left out.
"""

from __future__ import annotations

from typing import Annotated, TypeVar

import pydantic
from pydantic import BeforeValidator

from video_runner.contracts.names import event_id_in
from video_runner.errors import ErrorCode, InvalidMessage

_SHOWN = 120
Model = TypeVar("Model", bound=pydantic.BaseModel)


def _whole_float_as_int(value: object) -> object:
    # JSON Schema's "integer" takes 3.0, and so did every parser before these models.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


#: A JSON integer: 3 or 3.0, never "3" nor true.
WholeNumber = Annotated[int, BeforeValidator(_whole_float_as_int)]


def validated(document: dict[str, object], model: type[Model], name: str) -> Model:
    """The document read as ``model``.

    Raises:
        InvalidMessage: ``schema``, with the event id when the document names a valid one.
    """
    try:
        return model.model_validate(document)
    except pydantic.ValidationError as exc:
        error = exc.errors()[0]
        where = "/".join(str(p) for p in error["loc"]) or "message"
        text = error["msg"] if len(error["msg"]) <= _SHOWN else error["msg"][:_SHOWN] + "..."
        raise InvalidMessage(
            f"{name} schema: {where}: {text}",
            code=ErrorCode.SCHEMA,
            event_id=event_id_in(document),
        ) from None
    except RecursionError as exc:  # a belt to the depth check's braces
        raise InvalidMessage("message is nested too deep", code=ErrorCode.TOO_DEEP) from exc
