"""Faults of this machine rather than of a message or a server: waited out, never failed."""

from __future__ import annotations

import errno

#: Local resource faults while streaming a transfer to or from disk: they pass, the event is fine.
LOCAL_FAULTS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EMFILE, errno.ENFILE, errno.EIO})


def is_local_fault(exc: BaseException) -> bool:
    """A fault of this machine, not of the message: a full disk, no memory, no file handles.

    Waited out like a dependency that is down: failing the event for it would fail every event.
    """
    return isinstance(exc, MemoryError) or (isinstance(exc, OSError) and exc.errno in LOCAL_FAULTS)
