"""Errors raised by the checkpoint readers, so callers can tell bad files from bugs."""
from __future__ import annotations


class CheckpointError(Exception):
    """A checkpoint file cannot be read: wrong format, unknown layout or corrupt content."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint asks to run or import something outside the allow-list; nothing was executed."""
