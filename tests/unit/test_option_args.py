"""The option flags of ``submit`` and ``process``, and the event ``submit`` publishes with them."""

from __future__ import annotations

import argparse

import pytest

from support.fakes import FakeObjectStore, FakePublisher
from video_runner.entrypoints.cli import build_parser
from video_runner.entrypoints.option_args import duration_ms, options_of
from video_runner.errors import ErrorCode, InvalidMessage
from video_runner.services import client_actions as client


@pytest.mark.parametrize(
    ("text", "expected"),
    [("10s", 10_000), ("1m", 60_000), ("1500ms", 1500), ("90", 90_000), ("1.5h", 5_400_000)],
)
def test_durations_are_read_in_milliseconds(text, expected):
    """Units ms, s, m and h; a bare number is seconds."""
    assert duration_ms(text) == expected


def test_a_duration_without_a_number_is_refused():
    """``soon`` is not a time."""
    with pytest.raises(argparse.ArgumentTypeError, match="duration"):
        duration_ms("soon")


def test_submit_flags_become_the_events_options():
    """--fps, --classes, --min-confidence, --start, --end and --tag map onto the contract."""
    args = build_parser().parse_args(
        [
            *("submit", "v.mp4", "--fps", "2", "--classes", "person, car"),
            *("--min-confidence", "0.5", "--start", "10s", "--end", "1m", "--tag", "job 7"),
        ]
    )
    assert options_of(args).as_document() == {
        "fps": 2.0,
        "start_ms": 10_000,
        "end_ms": 60_000,
        "classes": ["person", "car"],
        "min_confidence": 0.5,
        "tag": "job 7",
    }


def test_flags_the_contract_refuses_are_refused_as_bad_options():
    """An end before the start fails on the command line, not later in the runner."""
    args = build_parser().parse_args(["process", "v.mp4", "--start", "1m", "--end", "10s"])
    with pytest.raises(InvalidMessage) as caught:
        options_of(args)
    assert caught.value.code == ErrorCode.BAD_OPTIONS


async def test_submit_publishes_the_options_in_the_payload(tmp_path):
    """The outbox event carries payload.options; without options there is no such field."""
    video = tmp_path / "v.mp4"
    video.write_bytes(b"video")
    publisher = FakePublisher()
    for options in ({"every_n": 10, "tag": "t"}, None):
        await client.submit(
            FakeObjectStore(),
            publisher,
            bucket="videos",
            topic="outbox_events",
            video=video,
            options=options,
        )
    with_options, without = (sent.value["payload"] for sent in publisher.on("outbox_events"))
    assert with_options["options"] == {"every_n": 10, "tag": "t"}
    assert "options" not in without


def test_submit_callback_url_becomes_the_events_callback_url():
    """--callback-url maps onto options.callback_url, beside the other options."""
    args = build_parser().parse_args(
        ["submit", "v.mp4", "--tag", "t", "--callback-url", "https://hooks.example.com/videos"]
    )
    assert options_of(args).as_document() == {
        "tag": "t",
        "callback_url": "https://hooks.example.com/videos",
    }


def test_a_callback_url_the_contract_refuses_is_refused_as_bad_options():
    """Not an http(s) URL: refused on the command line, before any upload."""
    args = build_parser().parse_args(["submit", "v.mp4", "--callback-url", "ftp://example.com/x"])
    with pytest.raises(InvalidMessage) as caught:
        options_of(args)
    assert caught.value.code == ErrorCode.BAD_OPTIONS


def test_process_does_not_take_a_callback_url():
    """process posts no notice, so the flag would be silently ignored: argparse refuses it."""
    with pytest.raises(SystemExit):
        build_parser().parse_args(["process", "v.mp4", "--callback-url", "https://h.example/x"])
