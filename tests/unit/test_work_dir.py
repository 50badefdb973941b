"""The work-directory sweep removes leftovers of earlier runs, never files in use or not ours."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from video_runner.services.work_dir import LOCK_NAME, release_work_dir, sweep_work_dir

LEFTOVERS = ["ev-1-1a2b3c4d.video", "ev-2-00ff00ff.video.part", "ev-3-abcdef12.video.3fA9bC0d"]
KEPT = ["notes.txt", "ev-4.video.partial", "ev-5.video.123", "video", "ev-6.mp4"]


@pytest.fixture
def work(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "work"
    yield path
    release_work_dir(path)


def _touch(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"x")


def test_leftover_downloads_of_earlier_runs_are_removed(work):
    """Videos, their .part files and boto3's temporary files go; the count says how many."""
    _touch(work, LEFTOVERS + KEPT)
    assert sweep_work_dir(work) == len(LEFTOVERS)
    assert sorted(p.name for p in work.iterdir()) == sorted([*KEPT, LOCK_NAME])


def test_files_that_are_not_ours_and_subdirectories_are_left_alone(work):
    """Only our names directly in the directory: a folder named like a video is not a file."""
    _touch(work / "keep.video", ["inner.video"])
    _touch(work, ["a.video"])
    (work / "link.video").symlink_to(work / "keep.video" / "inner.video")
    assert sweep_work_dir(work) == 1
    assert (work / "keep.video" / "inner.video").exists()
    assert (work / "link.video").is_symlink()


def test_a_missing_work_directory_is_created_and_sweeping_twice_is_harmless(work):
    """The first start creates it; a second call in the same process removes nothing."""
    assert sweep_work_dir(work) == 0
    assert work.is_dir()
    _touch(work, ["b.video"])
    assert sweep_work_dir(work) == 0
    assert (work / "b.video").exists()


def test_a_directory_in_use_by_another_live_process_is_not_swept(work):
    """Another replica on this host downloading into the same directory keeps its files."""
    _touch(work, ["live.video"])
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import sys
                from pathlib import Path
                from video_runner.services.work_dir import sweep_work_dir
                sweep_work_dir(Path(sys.argv[1]))
                print("holding", flush=True)
                sys.stdin.read()
                """
            ),
            str(work),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "holding"
        assert not (work / "live.video").exists()  # the holder swept it: it started first
        _touch(work, ["live.video"])
        assert sweep_work_dir(work) == 0
        assert (work / "live.video").exists()
    finally:
        holder.communicate("", timeout=10)
    release_work_dir(work)
    # The other process is gone (its lock with it): the next start sweeps.
    assert sweep_work_dir(work) == 1
