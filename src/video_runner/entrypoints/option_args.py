"""The per-video options as command-line flags, shared by ``submit`` and ``process``.

``--fps 2 | --every-n 10 --classes person,car --min-confidence 0.5 --start 10s --end 1m
--tag TEXT`` (and, on ``submit`` only, ``--callback-url URL``) become ``payload.options``
(docs/contracts.md); the contract's model validates them, so a flag is refused exactly as the
runner would refuse the option. Whether the callback's host is allowed (``WEBHOOK_ALLOWED_HOSTS``)
is the runner's setting, checked there: an event whose host it refuses fails with ``bad_options``.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

import pydantic

from video_runner.contracts.options import EventOptions
from video_runner.errors import ErrorCode, InvalidMessage

_DURATION = re.compile(r"(?P<value>\d+(?:\.\d+)?)(?P<unit>ms|s|m|h)?")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}


def duration_ms(text: str) -> int:
    """``1500ms``, ``10s``, ``1m``, ``1.5h``, or plain seconds (``90``), in milliseconds."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 10s, 1m or 1500ms")
    return round(float(match["value"]) * _UNIT_MS[match["unit"] or "s"])


def add_option_arguments(parser: argparse.ArgumentParser, *, callback_url: bool = False) -> None:
    """The option flags; ``callback_url`` adds ``--callback-url`` (only a running system's
    notices are posted: ``process`` has none, so it does not take the flag)."""
    group = parser.add_argument_group("per-video options (payload.options)")
    sampling = group.add_mutually_exclusive_group()
    sampling.add_argument("--fps", type=float, help="frames per second, nearest by timestamp")
    sampling.add_argument("--every-n", type=int, help="every N-th frame (default FRAME_EVERY_N)")
    group.add_argument("--classes", help="comma-separated classes to keep, e.g. person,car")
    group.add_argument("--min-confidence", type=float, help="drop detections below this (0..1)")
    group.add_argument("--start", type=duration_ms, help="from this time, e.g. 10s")
    group.add_argument("--end", type=duration_ms, help="up to this time, e.g. 1m")
    group.add_argument("--tag", help="client text echoed in the result and notices (<= 256)")
    group.add_argument(
        "--track",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="link objects into tracks across frames (default: the services' TRACK_DEFAULT)",
    )
    if callback_url:
        group.add_argument(
            "--callback-url",
            metavar="URL",
            help="POST the completion notice here, signed (its host must be in the services' "
            "WEBHOOK_ALLOWED_HOSTS)",
        )


def options_of(args: argparse.Namespace) -> EventOptions:
    """The validated options the flags ask for (all absent: the defaults)."""
    raw: dict[str, Any] = {
        "fps": args.fps,
        "every_n": args.every_n,
        "classes": None if args.classes is None else [c.strip() for c in args.classes.split(",")],
        "min_confidence": args.min_confidence,
        "start_ms": args.start,
        "end_ms": args.end,
        "tag": args.tag,
        "track": getattr(args, "track", None),
        "callback_url": getattr(args, "callback_url", None),
    }
    try:
        return EventOptions.model_validate({k: v for k, v in raw.items() if v is not None})
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'options'}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidMessage(f"bad options: {problems}", code=ErrorCode.BAD_OPTIONS) from exc
