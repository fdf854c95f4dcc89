"""Checkpoints in, networks out: `loader` sniffs a file, runs the one reader for its family (each a
leaf that returns a ParsedCheckpoint without executing anything in the file), builds the network
and caches the conversion."""
from __future__ import annotations

from stylecore.formats.errors import CheckpointError, UnsafeCheckpointError
from stylecore.formats.parsed import ParsedCheckpoint

__all__ = ["CheckpointError", "UnsafeCheckpointError", "ParsedCheckpoint"]
