"""Bias, upsample, leaky ReLU, clamp, downsample: the nonlinearity of the alias-free layers.

One entry point (`filtered_lrelu`): the reference order of the official op in plain torch, built
from `bias_act` and `upfirdn2d`; the fused CUDA kernel of kernels/ where it is usable (forward
only), the sliced polyphase path of filtered_lrelu_cpu.py on the CPU.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch

from stylecore.ops.bias_act import bias_act
from stylecore.ops.cuda_kernels import cuda_kernel_ops
from stylecore.ops.filtered_lrelu_cpu import filtered_lrelu_sliced
from stylecore.ops.impl import torch_fast_path
from stylecore.ops.upfirdn2d import upfirdn2d

IntOrSeq = Union[int, Sequence[int]]


def filtered_lrelu(
    x: torch.Tensor,
    fu: Optional[torch.Tensor] = None,
    fd: Optional[torch.Tensor] = None,
    b: Optional[torch.Tensor] = None,
    up: int = 1,
    down: int = 1,
    padding: IntOrSeq = 0,
    gain: float = math.sqrt(2),
    slope: float = 0.2,
    clamp: Optional[float] = None,
    flip_filter: bool = False,
) -> torch.Tensor:
    """Return `down(fd * clamp(lrelu(up(fu * (x + b))) * gain))` for NCHW `x`.

    The activation runs at the higher (upsampled) rate so that its new harmonics can be
    removed by `fd` before decimation, which is what keeps the layer alias-free.

    Steps (exactly the official reference order):
    1. add the per-channel bias `b`;
    2. `upfirdn2d(x, fu, up=up, padding=padding, gain=up**2)` (zero insertion, pad/crop, FIR);
    3. leaky ReLU with `slope`, times `gain`, clamped to [-clamp, clamp] when `clamp` is set;
    4. `upfirdn2d(x, fd, down=down)` (FIR, keep every `down`-th sample).
    `fu`/`fd` are 1-D (separable) or 2-D filters, or None for the identity.
    The output has the dtype of `x`.
    """
    if x.ndim != 4:
        raise ValueError(f"filtered_lrelu expects an NCHW tensor, got shape {tuple(x.shape)}")
    up = int(up)
    down = int(down)
    if up < 1 or down < 1:
        raise ValueError(f"up and down must be positive integers, got up={up}, down={down}")
    if b is not None and (b.ndim != 1 or b.shape[0] != x.shape[1]):
        raise ValueError(f"bias must have shape [{x.shape[1]}], got {tuple(b.shape)}")
    kernel_ops = cuda_kernel_ops(x)
    if kernel_ops is not None:
        y = kernel_ops.filtered_lrelu(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter)
        if y is not None:
            return y
    if gain > 0 and torch_fast_path(x):
        y = filtered_lrelu_sliced(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter)
        if y is not None:
            return y
    if b is not None:
        x = bias_act(x, b.to(x.dtype))
    x = upfirdn2d(x, fu, up=up, padding=padding, flip_filter=flip_filter, gain=up ** 2)
    x = bias_act(x, act="lrelu", alpha=slope, gain=gain, clamp=clamp)
    x = upfirdn2d(x, fd, down=down, flip_filter=flip_filter)
    return x
