"""Ids, object keys and bucket names a message may carry: allowlists checked before any use."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import PurePosixPath

from video_runner.domain.ids import is_valid_id
from video_runner.errors import ErrorCode, InvalidMessage

#: S3's bucket naming rules: 3 to 63 of a-z, 0-9, '.' and '-', starting and ending alphanumeric.
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IP_ADDRESS = re.compile(r"\d{1,3}(\.\d{1,3}){3}")
_LOG_WIDTH = 80


def checked_id(value: str, what: str) -> str:
    if not is_valid_id(value):
        shown = value[:_LOG_WIDTH] + ("..." if len(value) > _LOG_WIDTH else "")
        raise InvalidMessage(
            f"{what} {shown!r} is not allowed: use letters, digits, '-' or '_', at most 128",
            code=ErrorCode.BAD_ID,
        )
    return value


def checked_key(key: str) -> str:
    # The raw segments, not PurePosixPath's: it folds "." away before we could see it.
    segments = key.split("/")
    if key.startswith("/") or any(s in {"", "..", "."} for s in segments) or "\\" in key:
        raise InvalidMessage(
            f"object key {key[:120]!r} is not a plain relative key", code=ErrorCode.BAD_ID
        )
    return key


def check_bucket(bucket: str, allowed: frozenset[str]) -> None:
    # The name first: "not allowed" would hide that the sender builds names S3 never accepts.
    if not _BUCKET_NAME.fullmatch(bucket) or ".." in bucket or _IP_ADDRESS.fullmatch(bucket):
        raise InvalidMessage(
            f"bucket {bucket[:_LOG_WIDTH]!r} is not a valid S3 bucket name", code=ErrorCode.BAD_ID
        )
    if bucket not in allowed:
        raise InvalidMessage(
            f"bucket {bucket!r} is not one of the allowed source buckets"
            f" ({', '.join(sorted(allowed)) or 'none'})",
            code=ErrorCode.BUCKET_NOT_ALLOWED,
        )


def event_id_in(document: Mapping[str, object]) -> str | None:
    """The event id the parser would choose, if it is a valid one (else None, never a guess)."""
    chosen = document.get("event_id") or document.get("_id")
    if chosen is None:
        payload = document.get("payload")
        key = payload.get("object") if isinstance(payload, dict) else None
        chosen = PurePosixPath(key).stem if isinstance(key, str) else None
    return chosen if isinstance(chosen, str) and is_valid_id(chosen) else None
