"""Faults of this machine rather than of a message or a server: waited out, never failed."""

from __future__ import annotations

import errno

from video_runner.errors import DependencyUnavailable

#: Local resource faults while streaming a transfer to or from disk: they pass, the event is fine.
LOCAL_FAULTS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EMFILE, errno.ENFILE, errno.EIO})


def is_local_fault(exc: BaseException) -> bool:
    """A fault of this machine, not of the message: a full disk, no memory, no file handles.

    Waited out like a dependency that is down: failing the event for it would fail every event.
    """
    return isinstance(exc, MemoryError) or (isinstance(exc, OSError) and exc.errno in LOCAL_FAULTS)


def classify_local(exc: Exception, *, what: str = "local") -> Exception:
    """A fault of this machine becomes the dependency it takes away (``memory``, ``disk``, as the
    S3 table names a full disk during a transfer); anything else is returned unchanged.

    Only resource faults: a bare ``PermissionError`` or ``FileNotFoundError`` says nothing of a
    dependency (a work directory we may not write, a bug), and a bare ``ConnectionError`` means
    an adapter let one through unclassified; both stay unexpected, which is the visible outcome.
    """
    if isinstance(exc, MemoryError):
        return DependencyUnavailable("memory", f"{what}: out of memory")
    if isinstance(exc, OSError) and exc.errno in LOCAL_FAULTS:
        return DependencyUnavailable("disk", f"{what}: {exc}")
    return exc
