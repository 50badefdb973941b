"""``video-runner deps wait``: which dependencies it waits for, and S3's buckets, without servers.

The wait loop itself and the command against the real stack are in
tests/integration/test_deps_command.py.
"""

from __future__ import annotations

import pytest

from support.fakes import FakeObjectStore
from video_runner.entrypoints import deps_command
from video_runner.entrypoints.cli import build_parser


def test_without_names_it_waits_for_every_dependency_and_creates_no_bucket():
    """``deps wait`` alone: kafka, s3 and mongodb, buckets left as they are."""
    args = build_parser().parse_args(["deps", "wait"])
    assert args.names == []
    assert args.create_buckets is False


def test_it_waits_only_for_the_dependencies_it_is_given():
    """``deps wait s3 mongodb --create-buckets``: the names, in the order given."""
    args = build_parser().parse_args(["deps", "wait", "s3", "mongodb", "--create-buckets"])
    assert args.names == ["s3", "mongodb"]
    assert args.create_buckets is True


def test_an_unknown_dependency_is_a_usage_error(capsys):
    """``mongo`` is not a name it knows (``mongodb`` is): exit 2, naming the expected ones."""
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["deps", "wait", "mongo"])
    assert exited.value.code == 2
    assert "expected kafka, s3, mongodb" in capsys.readouterr().err


async def test_s3_is_up_once_its_buckets_exist_and_a_failure_is_retried(capsys):
    """The S3 check lists the buckets, then creates each missing one; a failed call is retried
    by the wait loop until both buckets exist."""
    objects = FakeObjectStore()
    objects.fail_next(2)
    check = deps_command._S3Check(objects, ["videos", "frames", "videos"])
    down = await deps_command.wait_for({"s3": check}, 5.0, interval_s=0.01)
    assert down == []
    assert objects.buckets == {"videos", "frames"}
    assert capsys.readouterr().out.startswith("s3: up")


async def test_s3_without_buckets_to_create_only_lists_them():
    """Without ``--create-buckets`` the check creates nothing."""
    objects = FakeObjectStore()
    await deps_command._S3Check(objects, ())()
    assert objects.buckets == set()
