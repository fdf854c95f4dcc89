"""Checkpoint readers: each returns a ParsedCheckpoint without executing anything in the file.

Light to import; `load_generator` (in stylecore.loader) is resolved on first use.
"""
from __future__ import annotations

from typing import Any

from stylecore.formats.errors import CheckpointError, UnsafeCheckpointError
from stylecore.formats.parsed import ParsedCheckpoint

__all__ = ["CheckpointError", "UnsafeCheckpointError", "ParsedCheckpoint", "load_generator", "read_checkpoint"]


def __getattr__(name: str) -> Any:
    if name in ("load_generator", "read_checkpoint"):
        from stylecore import loader

        return getattr(loader, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
