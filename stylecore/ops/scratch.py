"""Reusable per-thread scratch buffers for the intermediates of the fast CPU ops.

An upsampled activation is several times the layer's size; allocating it afresh for every slice
of every layer makes the allocator map, fault in and unmap the same pages thousands of times per
image. Each thread (a concurrent request runs in its own) keeps a few flat buffers that only
grow, and the ops carve their intermediates out of them. Only for values that do not outlive the
op, and only in eager CPU inference (banded.eager_cpu_inference): never when autograd keeps the
intermediates, and never while torch.compile traces (a buffer held across calls has no place in
a captured graph).
"""
from __future__ import annotations

import math
import threading

import torch

_local = threading.local()


def scratch(slot: int, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """A contiguous uninitialised [shape] view of this thread's buffer number `slot` (CPU).

    The view is valid until the next call with the same slot in this thread.
    """
    buffers: dict[tuple[int, torch.dtype], torch.Tensor] = _local.__dict__.setdefault("buffers", {})
    numel = math.prod(shape)
    buf = buffers.get((slot, dtype))
    if buf is None or buf.numel() < numel:
        buf = torch.empty(numel, dtype=dtype)
        buffers[(slot, dtype)] = buf
    return buf[:numel].view(shape)

