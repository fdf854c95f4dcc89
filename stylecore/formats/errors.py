"""Errors raised by the checkpoint readers, so callers can tell bad files from bugs.

Every message names the file, so a user knows which download to replace.
"""
from __future__ import annotations

import os
from typing import Optional, Union

PathLike = Union[str, "os.PathLike[str]"]


class CheckpointError(Exception):
    """A checkpoint file cannot be read: missing, wrong format, unknown layout, corrupt or truncated.

    Two forms: `CheckpointError(path, problem)` (message "path: problem"), or
    `CheckpointError(message)` where the caller has already put the file name in the message.
    """

    def __init__(self, path: Union[PathLike, str], problem: Optional[str] = None):
        if problem is None:
            self.path: Optional[str] = None
            self.problem = str(path)
            message = self.problem
        else:
            self.path = os.fspath(path)
            self.problem = problem
            message = f"{self.path}: {problem}"
        super().__init__(message)

    def __reduce__(self):
        # Picklable (multiprocessing, pytest-xdist) despite the two-form __init__.
        if self.path is None:
            return (type(self), (self.problem,))
        return (type(self), (self.path, self.problem))


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint asks to run or import something outside the allow-list; nothing was executed."""

    DEFAULT_REASON = "checkpoints are loaded as data; only tensor/container globals are allowed"

    def __init__(self, path: PathLike, global_name: str, reason: Optional[str] = None):
        self.global_name = global_name
        self.reason = reason or self.DEFAULT_REASON
        self.path = os.fspath(path)
        self.problem = f"refused global '{global_name}': {self.reason}"
        Exception.__init__(self, f"refused global '{global_name}' in {self.path}: {self.reason}")

    def __reduce__(self):
        return (type(self), (self.path, self.global_name, self.reason))
