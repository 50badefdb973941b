"""Per-video options (``payload.options`` of an ``outbox_events`` message): a validated model.

Every option is optional; without any the runner works as it always did (every ``FRAME_EVERY_N``
-th frame, all classes, the detector's own threshold). ``event_options.schema.json`` beside this
module is this model's JSON Schema (a unit test keeps the two equal); a message whose options
break it is dead-lettered and its event fails with ``bad_options``.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from video_runner.domain.sampling import SamplingPlan

#: The longest video an option may point into: far above ``MAX_VIDEO_DURATION_S``'s default.
_MAX_MS = 7 * 24 * 3600 * 1000

ClassName = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class EventOptions(BaseModel):
    """What a producer may ask of one video. ``every_n`` and ``fps`` exclude each other."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    every_n: int | None = Field(default=None, ge=1, le=100_000)
    fps: float | None = Field(default=None, gt=0, le=1000)
    start_ms: int | None = Field(default=None, ge=0, le=_MAX_MS)
    end_ms: int | None = Field(default=None, ge=1, le=_MAX_MS)
    classes: list[ClassName] | None = Field(default=None, min_length=1, max_length=100)
    min_confidence: float | None = Field(default=None, ge=0, le=1)
    tag: str | None = Field(default=None, max_length=256)
    #: Where to POST the completion notice (a webhook). Only hosts in ``WEBHOOK_ALLOWED_HOSTS``
    #: pass (``callback_refusal``); none do by default.
    callback_url: str | None = Field(
        default=None, min_length=8, max_length=2048, pattern=r"^https?://[^\s/?#@]+(/[^\s]*)?$"
    )

    @model_validator(mode="before")
    @classmethod
    def _integers_as_numbers(cls, data: Any) -> Any:  # noqa: ANN401 - pydantic's hook
        # Strict mode refuses 2 for a float field, yet JSON writes 2.0 as 2.
        if isinstance(data, dict):
            for name in ("fps", "min_confidence"):
                value = data.get(name)
                if isinstance(value, int) and not isinstance(value, bool):
                    data = {**data, name: float(value)}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> EventOptions:
        if self.every_n is not None and self.fps is not None:
            raise ValueError("every_n and fps exclude each other")
        if self.end_ms is not None and self.end_ms <= (self.start_ms or 0):
            raise ValueError("end_ms must be after start_ms")
        if self.callback_url is not None and callback_host(self.callback_url) is None:
            raise ValueError("callback_url must name a host")
        return self

    def sampling(self, default_every_n: int) -> SamplingPlan:
        """The video's sampling plan: these options over the runner's default."""
        every_n = None if self.fps is not None else (self.every_n or default_every_n)
        return SamplingPlan(
            every_n=every_n, fps=self.fps, start_ms=self.start_ms, end_ms=self.end_ms
        )

    def as_document(self) -> dict[str, Any]:
        """The options that were given, as stored on the document and in the final JSON."""
        return self.model_dump(exclude_none=True)


def callback_host(url: str) -> str | None:
    """The host a callback URL names, lower case, without port; None if it names none."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    return host.lower() if host else None


def callback_refusal(options: EventOptions, allowed_hosts: frozenset[str]) -> str | None:
    """Why ``options.callback_url`` may not be called (``WEBHOOK_ALLOWED_HOSTS``); None if it may.

    The runner checks this right after the schema: a refused URL is ``bad_options``, like any
    other option outside the contract.
    """
    if options.callback_url is None:
        return None
    host = callback_host(options.callback_url)
    if host is None or host not in {h.lower() for h in allowed_hosts}:
        return f"payload.options.callback_url: host {host!r} is not in WEBHOOK_ALLOWED_HOSTS"
    return None


def schema_document() -> dict[str, Any]:
    """This model's JSON Schema, as ``event_options.schema.json`` holds it."""
    schema = EventOptions.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "video-runner/event_options",
        **schema,
    }
