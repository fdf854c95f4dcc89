"""One convention for long work: how it reports progress and how it is stopped.

`Progress` takes a fraction of the whole (0..1) and a message. Downloads count bytes instead
(`ByteProgress`: done, total or None, message); `from_bytes` is the one adapter between the two.
`ShouldStop` is polled between steps (`stop_requested`); the work then raises `Cancelled` and leaves
nothing behind.
"""
from __future__ import annotations

import threading
from typing import Callable, Optional, Union

Progress = Optional[Callable[[float, str], None]]
ByteProgress = Optional[Callable[[int, Optional[int], str], None]]
ShouldStop = Optional[Union[Callable[[], bool], threading.Event]]


class Cancelled(Exception):
    """The user stopped the work; whatever it had started was cleaned up."""


def report(progress: Progress, fraction: float, message: str) -> None:
    """Tell `progress` (which may be None) that `fraction` of the work is done."""
    if progress is not None:
        progress(min(max(float(fraction), 0.0), 1.0), message)


def scaled(progress: Progress, start: float, end: float) -> Progress:
    """A Progress for one part of a job that spans [start, end] of the caller's progress."""
    if progress is None:
        return None
    return lambda fraction, message: progress(start + (end - start) * min(max(fraction, 0.0), 1.0), message)


def from_bytes(progress: Progress, start: float = 0.0, end: float = 1.0) -> ByteProgress:
    """A ByteProgress for a download that spans [start, end] of `progress`."""
    if progress is None:
        return None
    part = scaled(progress, start, end)
    return lambda done, total, message: part(done / total if total else 0.0, message)


def stop_requested(should_stop: ShouldStop) -> bool:
    """Whether the caller asked to stop (a callable returning True, or a set Event)."""
    if should_stop is None:
        return False
    if isinstance(should_stop, threading.Event):
        return should_stop.is_set()
    return bool(should_stop())
