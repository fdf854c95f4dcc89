"""Which implementation of the ops runs: the reference torch code or the fast paths.

`ref` is the plain-torch reference (the definition every fast path is tested against); `fast`
uses the fast CPU paths and requires the CUDA kernels on a GPU; `auto` (the default) uses the fast
CPU paths and the CUDA kernels where they build, the reference elsewhere. Chosen by
STYLECORE_OPS or, for a block of code (benchmarks, tests), by `use_impl`.
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator

import torch

IMPLS = ("ref", "fast", "auto")

_override: list[str] = []


def current_impl() -> str:
    """The implementation in force: the innermost `use_impl`, else STYLECORE_OPS, else auto."""
    if _override:
        return _override[-1]
    name = os.environ.get("STYLECORE_OPS", "auto").strip().lower() or "auto"
    if name not in IMPLS:
        raise ValueError(f"STYLECORE_OPS={name!r} is not one of {', '.join(IMPLS)}")
    return name


@contextlib.contextmanager
def use_impl(name: str) -> Iterator[None]:
    """Run a block with the ops implementation `name` ('ref', 'fast' or 'auto')."""
    if name not in IMPLS:
        raise ValueError(f"unknown ops implementation {name!r}; choose one of {', '.join(IMPLS)}")
    _override.append(name)
    try:
        yield
    finally:
        _override.pop()


def fast_cpu(x: torch.Tensor) -> bool:
    """Whether `x` should take the fast CPU path."""
    return x.device.type == "cpu" and current_impl() != "ref"
