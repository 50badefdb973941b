"""``video-runner deps wait``: its arguments and its wait loop, then against the local stack.

The first tests need no server (argument handling and the loop with stand-in checks); the last
ones run the command as a process against the running stack, and against a dead Kafka address.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from support.stack import free_port, require_stack
from video_runner.entrypoints import deps_command
from video_runner.entrypoints.cli import build_parser
from video_runner.errors import DependencyUnavailable

COMMAND = [sys.executable, "-m", "video_runner.entrypoints.cli", "deps", "wait"]


def test_deps_wait_waits_sixty_seconds_unless_told_otherwise():
    """``deps wait`` has a 60 s default; ``--timeout`` takes fractional seconds."""
    parser = build_parser()
    assert parser.parse_args(["deps", "wait"]).timeout == 60.0
    args = parser.parse_args(["deps", "wait", "--timeout", "2.5"])
    assert args.timeout == 2.5
    assert args.handler is deps_command.wait_command


@pytest.mark.parametrize("value", ["0", "-1", "abc", "inf", "nan"])
def test_a_timeout_that_is_not_a_positive_finite_number_is_a_usage_error(value, capsys):
    """A bad ``--timeout`` exits 2 with argparse's usage message naming the value."""
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["deps", "wait", "--timeout", value])
    assert exited.value.code == 2
    assert repr(value) in capsys.readouterr().err


def test_deps_without_an_action_is_a_usage_error(capsys):
    """``deps`` alone names the action it needs."""
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["deps"])
    assert exited.value.code == 2
    assert "ACTION" in capsys.readouterr().err


async def test_the_wait_retries_each_dependency_until_it_answers_and_prints_each(capsys):
    """A dependency that fails twice is retried; each one is printed once it answers."""
    failures = {"left": 2}

    async def flaky():
        if failures["left"]:
            failures["left"] -= 1
            raise DependencyUnavailable("s3", "connection refused")

    async def up():
        return None

    down = await deps_command.wait_for({"s3": flaky, "mongodb": up}, 5.0, interval_s=0.01)
    out, err = capsys.readouterr()
    assert down == []
    assert failures["left"] == 0
    assert sorted(line.split(":")[0] for line in out.splitlines()) == ["mongodb", "s3"]
    assert err.count("s3: waiting: DependencyUnavailable: s3 unavailable: connection refused") == 1


async def test_the_wait_gives_up_at_its_timeout_naming_what_is_still_down(capsys):
    """At the deadline the names still down are returned; the others were printed up."""

    async def down():
        raise DependencyUnavailable("kafka", "no broker")

    async def up():
        return None

    started = time.monotonic()
    still_down = await deps_command.wait_for({"kafka": down, "s3": up}, 0.3, interval_s=0.01)
    assert still_down == ["kafka"]
    assert time.monotonic() - started < 3
    assert capsys.readouterr().out.startswith("s3: up")


def test_deps_wait_exits_0_and_prints_each_dependency_when_the_stack_is_up():
    """Against the running stack, Kafka, S3 and MongoDB each answer through the adapters."""
    require_stack()
    done = subprocess.run(
        [*COMMAND, "--timeout", "30"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    answered = sorted(line.split(":")[0] for line in done.stdout.splitlines())
    assert answered == ["kafka", "mongodb", "s3"]


def test_deps_wait_exits_1_at_its_timeout_naming_a_dependency_that_is_down():
    """With Kafka pointed at a port nobody listens on, the command exits 1 after its timeout,
    naming kafka, while S3 and MongoDB are reported up."""
    require_stack()
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"}
    started = time.monotonic()
    done = subprocess.run(
        [*COMMAND, "--timeout", "3"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 1
    assert time.monotonic() - started < 30
    assert sorted(line.split(":")[0] for line in done.stdout.splitlines()) == ["mongodb", "s3"]
    assert "still down after 3 s: kafka" in done.stderr
