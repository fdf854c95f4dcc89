"""Which implementation of the ops runs: the reference torch code or the fast paths.

- `ref`: the plain-torch reference, the definition every fast path is tested against;
- `auto` (the default): the fast plain-torch paths on the CPU; on a GPU the CUDA kernels once they
  are built and checked (in the background), the reference until then or if they cannot be built;
- `fast`: as auto, but a GPU call waits for the kernels' build and check instead of not waiting;
- `torch`: the fast plain-torch paths on every device and never the kernels: what a GPU without a
  compiler can use, kept selectable to be measured against the others there.
Chosen by STYLECORE_OPS or, for a block of code (benchmarks, tests), by `use_impl`.
"""
from __future__ import annotations

import contextlib
import os
import threading
from typing import Iterator

import torch

IMPLS = ("ref", "fast", "auto", "torch")

_local = threading.local()  # per thread: a benchmark's or a self-check's choice stays its own


def _overrides() -> list[str]:
    if not hasattr(_local, "stack"):
        _local.stack = []
    return _local.stack


def current_impl() -> str:
    """The implementation in force: this thread's innermost `use_impl`, else STYLECORE_OPS, else auto."""
    if _overrides():
        return _overrides()[-1]
    name = os.environ.get("STYLECORE_OPS", "auto").strip().lower() or "auto"
    if name not in IMPLS:
        raise ValueError(f"STYLECORE_OPS={name!r} is not one of {', '.join(IMPLS)}")
    return name


@contextlib.contextmanager
def use_impl(name: str) -> Iterator[None]:
    """Run a block (in this thread) with the ops implementation `name`, one of IMPLS."""
    if name not in IMPLS:
        raise ValueError(f"unknown ops implementation {name!r}; choose one of {', '.join(IMPLS)}")
    _overrides().append(name)
    try:
        yield
    finally:
        _overrides().pop()


def torch_fast_path(x: torch.Tensor) -> bool:
    """Whether a call on `x` takes the fast plain-torch path (banded filters, in-place epilogues)."""
    impl = current_impl()
    return impl == "torch" or (impl in ("fast", "auto") and x.device.type == "cpu")
