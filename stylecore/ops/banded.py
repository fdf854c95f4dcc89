"""FIR resampling along one axis as a block-banded matrix product: the fast plain-torch path.

Upsampling by zero insertion, padding, filtering and decimating along an axis is a linear map
whose matrix is banded. Cutting the output into blocks of `b` samples, every block needs the same
`window` of consecutive inputs and the same small `b x window` matrix, so the whole pass becomes
one unfold and one matrix multiplication. That skips the inserted zeros and the dropped samples
(polyphase filtering) and runs on the BLAS kernels, which on a CPU beats depthwise convolutions
over zero-stuffed images by an order of magnitude. It is differentiable like any matmul.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

BLOCK_OUTPUTS = 32  # outputs per block: large enough for efficient GEMMs, small enough for little waste


@dataclass(frozen=True)
class AxisPlan:
    """Where the blocks of one resampling pass sit in the input and output."""

    outputs: int  # output samples
    block: int  # outputs per block
    window: int  # inputs per block
    step: int  # input samples between consecutive blocks
    first: int  # input index of the first block's window (may be negative: zero padding)
    blocks: int

    @property
    def input_span(self) -> int:
        return (self.blocks - 1) * self.step + self.window


def plan_axis(length: int, taps: int, up: int, down: int, pad0: int, pad1: int) -> AxisPlan:
    """Block layout of the pass `length` inputs -> upfirdn with `taps` taps -> outputs."""
    outputs = (length * up + pad0 + pad1 - taps) // down + 1
    if outputs < 1:
        raise ValueError(f"resampling {length} samples (up {up}, down {down}, padding {pad0}/{pad1}, "
                         f"{taps} taps) leaves no output")
    unit = up // math.gcd(up, down)  # the block length must make block * down a multiple of up
    block = max(unit, BLOCK_OUTPUTS // unit * unit)
    block = min(block, -(-outputs // unit) * unit)
    first = -(pad0 // up)  # ceil(-pad0 / up): the first input that reaches output 0
    last = ((block - 1) * down - pad0 + taps - 1) // up
    blocks = -(-outputs // block)
    return AxisPlan(outputs, block, last - first + 1, block * down // up, first, blocks)


def block_matrix(g: torch.Tensor, plan: AxisPlan, up: int, down: int, pad0: int) -> torch.Tensor:
    """The `block x window` matrix M with y[j] = sum_i M[j, i] x[first + i] inside every block.

    `g` is the correlation kernel (the FIR filter already flipped as a convolution needs).
    """
    taps = g.shape[0]
    j = torch.arange(plan.block, device=g.device).unsqueeze(1)
    i = torch.arange(plan.window, device=g.device).unsqueeze(0)
    k = (plan.first + i) * up + pad0 - j * down
    inside = (k >= 0) & (k < taps)
    return torch.where(inside, g[k.clamp(0, taps - 1)], g.new_zeros(()))


def resample_axis(x: torch.Tensor, g: torch.Tensor, up: int, down: int, pad0: int, pad1: int,
                  dim: int) -> torch.Tensor:
    """upfirdn along `dim` (-1 or -2) of `x` with correlation kernel `g` (1-D)."""
    if dim not in (-1, -2):
        raise ValueError(f"dim must be -1 or -2, got {dim}")
    length = x.shape[dim]
    plan = plan_axis(length, g.shape[0], up, down, pad0, pad1)
    m = block_matrix(g.to(x.dtype), plan, up, down, pad0)
    xp = _span(x, dim, plan.first, plan.input_span)
    if dim == -1:
        # contiguous() first: matmul over the overlapping view itself takes a very slow path.
        y = xp.unfold(-1, plan.window, plan.step).contiguous() @ m.t()  # [..., blocks, block]
        return y.flatten(-2)[..., :plan.outputs]
    windows = xp.unfold(-2, plan.window, plan.step).transpose(-1, -2)  # [..., blocks, window, W]
    y = m @ windows  # [..., blocks, block, W]
    return y.flatten(-3, -2)[..., :plan.outputs, :]


def _span(x: torch.Tensor, dim: int, start: int, length: int) -> torch.Tensor:
    """x[start : start + length] along `dim`, reading zeros outside x."""
    size = x.shape[dim]
    left = max(-start, 0)
    right = max(start + length - size, 0)
    pad = [left, right] if dim == -1 else [0, 0, left, right]
    return F.pad(x, pad).narrow(dim, start + left, length)



def separable_factors(f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(column, row) vectors whose outer product is the 2-D CPU filter `f`, or None if it has rank > 1
    (or lives on another device).

    StyleGAN2's [1, 3, 3, 1] filter is stored as a 4x4 outer product; splitting it lets the fast
    path run two short 1-D passes instead of one 2-D convolution.
    """
    if f.device.type != "cpu":
        return None  # deciding would read the singular values back from the device: a sync per call
    f64 = f.detach().to(torch.float64)
    u, s, vh = torch.linalg.svd(f64)
    if s.numel() > 1 and s[1] > 1e-9 * s[0]:
        return None
    scale = s[0].sqrt()
    return (u[:, 0] * scale).to(f.dtype), (vh[0] * scale).to(f.dtype)


def upfirdn2d_banded(x: torch.Tensor, gx: torch.Tensor, gy: torch.Tensor, up: tuple[int, int],
                     down: tuple[int, int], padding: tuple[int, int, int, int]) -> torch.Tensor:
    """upfirdn2d with the correlation kernels `gx` (along W) and `gy` (along H), gain included."""
    px0, px1, py0, py1 = padding
    x = resample_axis(x, gx, up[0], down[0], px0, px1, -1)
    return resample_axis(x, gy, up[1], down[1], py0, py1, -2)
