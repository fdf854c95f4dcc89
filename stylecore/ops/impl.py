"""Which implementation of the ops runs: the reference torch code or the fast paths.

`ref` is the plain-torch reference (the definition every fast path is tested against); `fast`
uses the fast CPU paths and requires the CUDA kernels on a GPU; `auto` (the default) uses the fast
CPU paths and the CUDA kernels where they build, the reference elsewhere. Chosen by
STYLECORE_OPS or, for a block of code (benchmarks, tests), by `use_impl`.
"""
from __future__ import annotations

import contextlib
import os
import threading
from typing import Iterator

import torch

IMPLS = ("ref", "fast", "auto")

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
    """Run a block with the ops implementation `name` ('ref', 'fast' or 'auto')."""
    if name not in IMPLS:
        raise ValueError(f"unknown ops implementation {name!r}; choose one of {', '.join(IMPLS)}")
    _overrides().append(name)
    try:
        yield
    finally:
        _overrides().pop()


def fast_cpu(x: torch.Tensor) -> bool:
    """Whether `x` should take the fast CPU path."""
    return x.device.type == "cpu" and current_impl() != "ref"
