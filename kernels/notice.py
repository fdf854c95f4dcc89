"""The one line a user sees when a fast kernel cannot be used."""
from __future__ import annotations

import sys

from kernels.spec import ExtensionSpec

_told: set[str] = set()


def report_unavailable(spec: ExtensionSpec, reason: str) -> None:
    """Print the reason once per process and extension: the fallback works, so it is a notice, not an error."""
    if spec.name in _told:
        return
    _told.add(spec.name)
    kind = "CUDA" if spec.with_cuda else "C++"
    print(f"stylecore: fast {kind} kernels unavailable ({spec.name}: {reason}); using the torch ops",
          file=sys.stderr, flush=True)
