"""The argument forms the resampling ops accept, parsed once for stylecore.ops and the kernels alike."""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch

IntOrPair = Union[int, Sequence[int]]


def pair(value: IntOrPair) -> tuple[int, int]:
    """(x, y) from an int or a pair."""
    if isinstance(value, int):
        return value, value
    a, b = value
    return int(a), int(b)


def parse_padding(padding: IntOrPair) -> tuple[int, int, int, int]:
    """(x0, x1, y0, y1) from an int, (px, py) or (x0, x1, y0, y1)."""
    if isinstance(padding, int):
        return padding, padding, padding, padding
    if len(padding) == 2:
        px, py = padding
        return int(px), int(px), int(py), int(py)
    x0, x1, y0, y1 = padding
    return int(x0), int(x1), int(y0), int(y1)


def filter_size(f: Optional[torch.Tensor]) -> tuple[int, int]:
    """(width, height) of a filter; None is the 1x1 identity."""
    if f is None:
        return 1, 1
    if f.ndim == 1:
        return f.shape[0], f.shape[0]
    return f.shape[-1], f.shape[-2]
