"""Upsample, pad, FIR-filter and downsample (upfirdn2d) in plain torch.

The reference semantics of the official op: zero-insertion upsampling, zero padding (negative
values crop), true convolution with the FIR filter, then keeping every `down`-th sample.
Separable 1-D filters run as two 1-D passes. On the CPU, filters of 8 taps or more that are 1-D or a
short sum of separable terms (2-D of low rank) take the block-banded polyphase path of `banded.py`,
and CUDA tensors the kernel of kernels/ (see cuda_kernels.py), unless the reference ops are forced.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from stylecore.ops.args import IntOrPair, filter_size, parse_padding
from stylecore.ops.args import pair as _pair
from stylecore.ops.banded import separable_terms, upfirdn2d_banded
from stylecore.ops.cuda_kernels import cuda_kernel_ops
from stylecore.ops.impl import torch_fast_path


# Shorter filters (StyleGAN2's 4 taps) are as fast as a depthwise convolution already.
MIN_BANDED_TAPS = 8


def setup_filter(
    f,
    device: Optional[torch.device | str] = None,
    normalize: bool = True,
    flip_filter: bool = False,
    gain: float = 1,
    separable: Optional[bool] = None,
) -> torch.Tensor:
    """Turn a filter spec (None, scalar, list, array) into a float32 tensor as the official op does."""
    if f is None:
        f = 1
    f = torch.as_tensor(np.asarray(f, dtype=np.float32), dtype=torch.float32)
    if f.ndim == 0:
        f = f[None]
    if separable is None:
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = f.ger(f)
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f * (gain ** (f.ndim / 2))
    return f if device is None else f.to(device=device)


def upfirdn2d(
    x: torch.Tensor,
    f: Optional[torch.Tensor],
    up: IntOrPair = 1,
    down: IntOrPair = 1,
    padding: IntOrPair = 0,
    flip_filter: bool = False,
    gain: float = 1,
) -> torch.Tensor:
    """Pad, upsample, filter and downsample a batch of NCHW images."""
    upx, upy = _pair(up)
    downx, downy = _pair(down)
    px0, px1, py0, py1 = parse_padding(padding)
    kernel_ops = cuda_kernel_ops(x)
    if kernel_ops is not None:
        y = kernel_ops.upfirdn2d(x, f, up, down, padding, flip_filter, gain)
        if y is not None:
            return y
    if f is not None and max(filter_size(f)) >= MIN_BANDED_TAPS and torch_fast_path(x):
        terms = correlation_terms(f.to(x.dtype), flip_filter, gain)
        if terms is not None:
            return upfirdn2d_banded(x, terms, (upx, upy), (downx, downy), (px0, px1, py0, py1))
    n, c, h, w = x.shape

    # Zero-insertion upsampling.
    if upx > 1 or upy > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
        x = x.reshape(n, c, h * upy, w * upx)

    # Pad (positive) or crop (negative).
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]

    if f is not None:
        f = f.to(x.dtype)
        if not flip_filter:
            f = f.flip(list(range(f.ndim)))
        if f.ndim == 1:
            g = gain ** 0.5
            fx = (f * g).reshape(1, 1, 1, -1).repeat(c, 1, 1, 1)
            fy = (f * g).reshape(1, 1, -1, 1).repeat(c, 1, 1, 1)
            # Stride along an axis only applies to the pass over that axis.
            x = F.conv2d(x, fx, groups=c, stride=(1, downx))
            x = F.conv2d(x, fy, groups=c, stride=(downy, 1))
            return x
        f2 = (f * gain).reshape(1, 1, f.shape[0], f.shape[1]).repeat(c, 1, 1, 1)
        return F.conv2d(x, f2, groups=c, stride=(downy, downx))

    if gain != 1:
        x = x * gain
    if downx > 1 or downy > 1:
        x = x[:, :, ::downy, ::downx]
    return x


def correlation_terms(f: torch.Tensor, flip_filter: bool, gain: float
                      ) -> Optional[list[tuple[torch.Tensor, torch.Tensor]]]:
    """The filter as a short sum of separable terms, each as its 1-D correlation kernels (along W,
    along H), gain included.

    None when the 2-D filter needs too many terms (banded.separable_terms). upfirdn2d convolves, so
    the kernels are the filter flipped, unless `flip_filter` asks for correlation.
    """
    if f.ndim == 1:
        g = f if flip_filter else f.flip(0)
        g = g * gain ** 0.5
        return [(g, g)]
    terms = separable_terms(f)
    if terms is None:
        return None
    if not flip_filter:
        terms = [(column.flip(0), row.flip(0)) for column, row in terms]
    return [(row * gain, column) for column, row in terms]


def upsample2d(x: torch.Tensor, f: torch.Tensor, up: int = 2, padding: IntOrPair = 0,
               flip_filter: bool = False, gain: float = 1) -> torch.Tensor:
    """Upsample by `up` with FIR filter `f`; output is exactly `up` times larger (padding 0)."""
    upx, upy = _pair(up)
    px0, px1, py0, py1 = parse_padding(padding)
    fw, fh = filter_size(f)
    p = [px0 + (fw + upx - 1) // 2, px1 + (fw - upx) // 2, py0 + (fh + upy - 1) // 2, py1 + (fh - upy) // 2]
    return upfirdn2d(x, f, up=(upx, upy), padding=p, flip_filter=flip_filter, gain=gain * upx * upy)


def downsample2d(x: torch.Tensor, f: torch.Tensor, down: int = 2, padding: IntOrPair = 0,
                 flip_filter: bool = False, gain: float = 1) -> torch.Tensor:
    """Downsample by `down` after FIR filtering with `f`."""
    downx, downy = _pair(down)
    px0, px1, py0, py1 = parse_padding(padding)
    fw, fh = filter_size(f)
    p = [px0 + (fw - downx + 1) // 2, px1 + (fw - downx) // 2, py0 + (fh - downy + 1) // 2, py1 + (fh - downy) // 2]
    return upfirdn2d(x, f, down=(downx, downy), padding=p, flip_filter=flip_filter, gain=gain)


def filter2d(x: torch.Tensor, f: torch.Tensor, padding: IntOrPair = 0,
             flip_filter: bool = False, gain: float = 1) -> torch.Tensor:
    """Filter with `f` keeping the image size."""
    px0, px1, py0, py1 = parse_padding(padding)
    fw, fh = filter_size(f)
    p = [px0 + fw // 2, px1 + (fw - 1) // 2, py0 + fh // 2, py1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=p, flip_filter=flip_filter, gain=gain)
