"""The work directory: leftovers of earlier runs are swept at start, never files in use.

A process killed mid-video (SIGKILL, OOM, a node lost) leaves its download behind: the video
(``{event_id}-{hex}.video``, video_path) or the transfer's temporary file (``<video>.part`` of
``adapters.s3``; ``<video>.<8 hex digits>`` of boto3's ``download_file``, used by earlier versions).
Nothing else would ever remove them, and each can be gigabytes.

Several replicas may share one work directory (the default is per host). So every process that
sweeps also holds a shared ``flock`` on ``.in-use`` in that directory for its lifetime (the
kernel drops it when the process dies, however it dies), and sweeps only when it can first take
that lock exclusively: when no other live process uses the directory. Otherwise it removes
nothing; the leftovers go at the next start that finds the directory idle.

Only the names above are removed, and only files directly in the directory: whatever else an
operator keeps there is left alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_NAME = ".in-use"
#: The downloads of ``services.video_handler`` and their temporary files (see the module doc).
LEFTOVER = re.compile(r".+\.video(\.part|\.[0-9A-Fa-f]{8})?")

#: Descriptors of the held ``.in-use`` locks, by directory: kept open for the process lifetime.
_held: dict[Path, int] = {}


def sweep_work_dir(path: Path) -> int:
    """Remove leftover downloads of earlier runs from ``path``; return how many were removed.

    Creates ``path`` if needed and marks it in use by this process from then on (see the module
    doc); removes nothing while another live process uses it. Safe to call more than once.
    """
    path.mkdir(parents=True, exist_ok=True)
    key = path.resolve()
    if key in _held:
        return 0
    fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fcntl.flock(fd, fcntl.LOCK_SH)
        _held[key] = fd
        log.info("work directory in use by another process: not swept", extra={"path": str(path)})
        return 0
    try:
        removed = _remove_leftovers(path)
    finally:
        # Shared from now on: other processes may start and use it, none may sweep it.
        fcntl.flock(fd, fcntl.LOCK_SH)
        _held[key] = fd
    if removed:
        log.warning(
            "leftovers of earlier runs removed from the work directory",
            extra={"path": str(path), "files": removed},
        )
    return removed


def release_work_dir(path: Path) -> None:
    """Stop marking ``path`` in use (at shutdown, and in tests); a no-op if it was not."""
    fd = _held.pop(path.resolve(), None)
    if fd is not None:
        os.close(fd)  # closing the descriptor releases its flock


def _remove_leftovers(path: Path) -> int:
    removed = 0
    for entry in path.iterdir():
        if not LEFTOVER.fullmatch(entry.name) or entry.is_symlink() or not entry.is_file():
            continue
        with contextlib.suppress(FileNotFoundError):
            entry.unlink()
            removed += 1
    return removed
