"""Dead-letter copies always fit under the limit and keep what finds and checks the original."""

from __future__ import annotations

import hashlib

import pytest

from support.fakes import FakeMessage, FakePublisher
from video_runner.errors import ErrorCode, InvalidMessage, PermanentError
from video_runner.services.dead_letters import (
    DEFAULT_DLQ_MAX_BYTES,
    MAX_KEY_BYTES,
    RECORD_OVERHEAD_BYTES,
    dead_letter,
    dead_letter_copy,
)

KAFKA_DEFAULT_LIMIT = 1_048_576


def _size(key: bytes | None, value: bytes | None, headers: dict[str, str]) -> int:
    """What the copy weighs, counted as the module counts it (framing included)."""
    weight = sum(len(name.encode()) + len(text.encode()) for name, text in headers.items())
    return RECORD_OVERHEAD_BYTES + len(key or b"") + len(value or b"") + weight


def test_a_small_message_is_copied_whole_with_its_origin_and_digest():
    """Key and value as they came; headers say why, where from, how long, and its sha256."""
    message = FakeMessage("outbox_events", partition=2, offset=41, key=b"ev-1", value=b"{bad")
    error = PermanentError("not JSON", code=ErrorCode.BAD_JSON)
    key, value, headers = dead_letter_copy(message, error)
    assert (key, value) == (b"ev-1", b"{bad")
    assert headers == {
        "error_code": "bad_json",
        "error_message": "not JSON",
        "original_topic": "outbox_events",
        "original_partition": "2",
        "original_offset": "41",
        "original_size": "4",
        "original_sha256": hashlib.sha256(b"{bad").hexdigest(),
        "truncated": "false",
    }


@pytest.mark.parametrize("size", [DEFAULT_DLQ_MAX_BYTES - 100, KAFKA_DEFAULT_LIMIT, 5_000_000])
def test_a_large_value_is_truncated_so_the_copy_fits_under_the_limit(size):
    """Even an original right at Kafka's limit: its copy plus headers stays under 900 KB."""
    original = bytes(range(256)) * (size // 256 + 1)
    original = original[:size]
    message = FakeMessage("inference_results", partition=0, offset=7, key=b"ev-1", value=original)
    error = PermanentError("x" * 5000, code=ErrorCode.MESSAGE_TOO_LARGE)
    key, value, headers = dead_letter_copy(message, error)
    assert value is not None
    assert _size(key, value, headers) <= DEFAULT_DLQ_MAX_BYTES < KAFKA_DEFAULT_LIMIT
    assert original.startswith(value)
    assert headers["truncated"] == "true"
    assert headers["original_size"] == str(size)
    assert headers["original_sha256"] == hashlib.sha256(original).hexdigest()
    assert (headers["original_topic"], headers["original_offset"]) == ("inference_results", "7")


def test_a_value_exactly_at_the_budget_is_not_truncated():
    """The limit is inclusive: a copy weighing exactly max_bytes goes whole, one byte more not."""
    error = PermanentError("why")
    # A 4-digit original_size, like the value measured below: the headers weigh the same.
    _, _, headers = dead_letter_copy(FakeMessage("t", key=b"k", value=b"v" * 1000), error)
    budget = 10_000 - _size(b"k", b"", headers)
    fitting = FakeMessage("t", key=b"k", value=b"v" * budget)
    key, value, headers = dead_letter_copy(fitting, error, max_bytes=10_000)
    assert value == fitting.value
    assert headers["truncated"] == "false"
    assert _size(key, value, headers) == 10_000
    over = FakeMessage("t", key=b"k", value=b"v" * (budget + 1))
    key, value, headers = dead_letter_copy(over, error, max_bytes=10_000)
    assert headers["truncated"] == "true"
    assert _size(key, value, headers) <= 10_000


def test_a_custom_limit_is_honoured():
    """DLQ_MAX_BYTES lower than the default still bounds the copy."""
    message = FakeMessage("t", key=b"k", value=b"v" * 50_000)
    key, value, headers = dead_letter_copy(message, PermanentError("why"), max_bytes=8192)
    assert _size(key, value, headers) <= 8192
    assert headers["truncated"] == "true"


def test_an_oversized_key_and_reason_are_cut_too():
    """A poison key or a long multi-byte reason cannot push the copy over either."""
    message = FakeMessage("t", key=b"k" * 100_000, value=b"v" * 2_000_000)
    error = PermanentError("é" * 3000)
    key, value, headers = dead_letter_copy(message, error)
    assert key is not None
    assert len(key) == MAX_KEY_BYTES
    assert len(headers["error_message"].encode()) <= 1000
    assert headers["error_message"] == "é" * 500
    assert _size(key, value, headers) <= DEFAULT_DLQ_MAX_BYTES


def test_a_tombstone_is_copied_as_a_tombstone():
    """No value: nothing to cut; size 0 and the digest of nothing."""
    _key, value, headers = dead_letter_copy(FakeMessage("t", key=b"k"), PermanentError("empty"))
    assert value is None
    assert headers["original_size"] == "0"
    assert headers["original_sha256"] == hashlib.sha256(b"").hexdigest()


def test_the_event_id_an_invalid_message_carries_is_a_header():
    """The parser's event id travels with the copy, so nobody parses the bytes again."""
    error = InvalidMessage("bad key", code=ErrorCode.BAD_ID, event_id="ev-3")
    _, _, headers = dead_letter_copy(FakeMessage("t", value=b"{}"), error)
    assert headers["event_id"] == "ev-3"


async def test_dead_letter_publishes_the_copy_to_the_dlq_topic():
    """<topic> + suffix, the bounded copy, once acknowledged."""
    publisher = FakePublisher()
    message = FakeMessage("outbox_events", offset=3, key=b"ev-1", value=b"v" * 2_000_000)
    await dead_letter(publisher, message, PermanentError("big"), ".dlq", max_bytes=100_000)
    [sent] = publisher.sent
    assert sent.topic == "outbox_events.dlq"
    assert sent.key == b"ev-1"
    assert _size(sent.key, sent.value, sent.headers) <= 100_000
    assert sent.headers["truncated"] == "true"
