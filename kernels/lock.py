"""A build lock that cannot hang.

The lock is an flock on a file, not the file's existence: the kernel drops it when the holder exits
or crashes, so a dead builder never blocks, and a leftover or foreign lock file is just a file.
Waiting is bounded; on timeout the caller builds privately instead of waiting forever.
"""
from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; builds then go ahead unlocked, each in its own folder
    fcntl = None

POLL_INTERVAL_S = 0.1


@contextlib.contextmanager
def exclusive(path: Path, timeout: float) -> Iterator[bool]:
    """Hold an exclusive flock on `path` for the block, waiting at most `timeout` seconds.

    Yields whether the lock is held; False (timeout, unwritable folder, no flock support) means
    "go ahead unlocked", never an error, because the build stays correct without it.
    """
    if fcntl is None:
        yield False
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:
        yield False
        return
    try:
        held = _acquire(fd, time.monotonic() + timeout)
        try:
            yield held
        finally:
            if held:
                fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _acquire(fd: int, deadline: float) -> bool:
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(POLL_INTERVAL_S, remaining))
        except OSError:
            return False
