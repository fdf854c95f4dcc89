"""FIR resampling along one axis as a block-banded matrix product: the fast plain-torch path.

Upsampling by zero insertion, padding, filtering and decimating along an axis is a linear map
whose matrix is banded. Cutting the output into blocks of `b` samples, every block needs the same
`window` of consecutive inputs and the same small `b x window` matrix, so a pass is one matrix
product per block, read straight from the input and written straight into the output (strided
views: no unfolded copy, no padded copy; windows that reach into the zero padding just use fewer
columns of the matrix). That skips the inserted zeros and the dropped samples (polyphase
filtering) and runs on the BLAS kernels, which on a CPU beats depthwise convolutions over
zero-stuffed images by an order of magnitude.

Two ways to run a pass. Eager inference on the CPU (`eager_cpu_inference`) memoises the block
matrices and writes every block's product in place into a given `out`. Everything else (autograd
needing the intermediates, torch.compile tracing, other devices) builds the matrices from the
filter with tensor ops on every call and concatenates the blocks: no Python-side cache keyed on
tensor values, no in-place writes into views, so autograd can differentiate it and torch.compile
can capture it as part of one graph.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Optional, Sequence

import torch

BLOCK_OUTPUTS = 32  # outputs per block: large enough for efficient GEMMs, small enough for little waste
# Rank-one terms of a 2-D filter below this fraction of the first are dropped (float64: kept to rounding).
TERM_TOLERANCE = {torch.float64: 1e-12}
DEFAULT_TERM_TOLERANCE = 1e-6
MAX_TERMS = 4  # more terms than this: the filter is not worth splitting (a dense 2-D convolution is cheaper)


@dataclass(frozen=True)
class AxisPlan:
    """Where the blocks of one resampling pass sit in the input and output."""

    outputs: int  # output samples
    block: int  # outputs per block
    window: int  # inputs per block
    step: int  # input samples between consecutive blocks
    first: int  # input index of the first block's window (may be negative: zero padding)
    blocks: int


def plan_axis(length: int, taps: int, up: int, down: int, pad0: int, pad1: int,
              block_outputs: int = BLOCK_OUTPUTS) -> AxisPlan:
    """Block layout of the pass `length` inputs -> upfirdn with `taps` taps -> outputs."""
    outputs = (length * up + pad0 + pad1 - taps) // down + 1
    if outputs < 1:
        raise ValueError(f"resampling {length} samples (up {up}, down {down}, padding {pad0}/{pad1}, "
                         f"{taps} taps) leaves no output")
    unit = up // math.gcd(up, down)  # the block length must make block * down a multiple of up
    block = max(unit, block_outputs // unit * unit)
    block = min(block, -(-outputs // unit) * unit)
    first = -(pad0 // up)  # ceil(-pad0 / up): the first input that reaches output 0
    last = ((block - 1) * down - pad0 + taps - 1) // up
    blocks = -(-outputs // block)
    return AxisPlan(outputs, block, last - first + 1, block * down // up, first, blocks)


@dataclass(frozen=True)
class Piece:
    """One block of a pass: outputs [o0, o1) = matrix[:o1 - o0, c0:c1] @ inputs [i0, i1)."""

    o0: int
    o1: int
    i0: int
    i1: int
    c0: int
    c1: int


@dataclass(frozen=True)
class BandedAxis:
    """One resampling pass along an axis: its blocks and their shared matrix (and its transpose).

    The blocks `interior[0]:interior[1]` read a whole window and write a whole block: they run as
    one batched product over overlapping strided views; the few others (at the edges) one by one.
    """

    plan: AxisPlan
    matrix: torch.Tensor  # [block, window]
    matrix_t: torch.Tensor  # [window, block], contiguous
    pieces: tuple[Piece, ...]
    interior: tuple[int, int]

    @property
    def edges(self) -> tuple[Piece, ...]:
        return self.pieces[:self.interior[0]] + self.pieces[self.interior[1]:]


def eager_cpu_inference(*tensors: Optional[torch.Tensor]) -> bool:
    """Whether a call on `tensors` (None entries skipped) may use Python-side caches, reused buffers,
    in-place writes and thread settings: eager CPU code that autograd does not record.

    Not while torch.compile traces (a cache keyed on a filter's values would read the tensor back,
    and a buffer or a thread setting would be baked into or break the graph), not when a gradient is
    needed (autograd keeps the intermediates anyway), not off the CPU (a read-back is a sync).
    """
    present = [t for t in tensors if t is not None]
    return (not torch.compiler.is_compiling()
            and all(t.device.type == "cpu" for t in present)
            and not (torch.is_grad_enabled() and any(t.requires_grad for t in present)))


def banded_axis(g: torch.Tensor, length: int, up: int, down: int, pad0: int, pad1: int,
                block_outputs: int = BLOCK_OUTPUTS, cached: bool = False) -> BandedAxis:
    """The pass with correlation kernel `g` (the FIR filter already flipped as a convolution needs).

    With `cached` (eager CPU inference only, see eager_cpu_inference) it is built once per filter,
    shape and dtype (a network makes the same few thousand calls per image); otherwise from `g`
    with tensor ops, which autograd and torch.compile follow.
    """
    if not cached:
        return _build_axis(g, length, up, down, pad0, pad1, block_outputs)
    return _cached_axis((tuple(g.tolist()), g.dtype), length, up, down, pad0, pad1, block_outputs)


@functools.lru_cache(maxsize=512)
def _cached_axis(key: tuple[tuple[float, ...], torch.dtype], length: int, up: int, down: int, pad0: int,
                 pad1: int, block_outputs: int) -> BandedAxis:
    values, dtype = key
    return _build_axis(torch.tensor(values, dtype=dtype), length, up, down, pad0, pad1, block_outputs)


def _build_axis(g: torch.Tensor, length: int, up: int, down: int, pad0: int, pad1: int,
                block_outputs: int) -> BandedAxis:
    """The plan, the block matrix gathered from `g` (tensor ops) and the blocks' pieces (plain ints)."""
    taps = g.shape[0]
    plan = plan_axis(length, taps, up, down, pad0, pad1, block_outputs)
    j = torch.arange(plan.block, device=g.device).unsqueeze(1)
    i = torch.arange(plan.window, device=g.device).unsqueeze(0)
    k = (plan.first + i) * up + pad0 - j * down
    inside = (k >= 0) & (k < taps)
    matrix = torch.where(inside, g[k.clamp(0, taps - 1)], g.new_zeros(()))
    pieces = []
    for block in range(plan.blocks):
        o0 = block * plan.block
        start = plan.first + block * plan.step
        i0, i1 = max(start, 0), min(start + plan.window, length)
        i1 = max(i1, i0)
        pieces.append(Piece(o0, min(o0 + plan.block, plan.outputs), i0, i1, i0 - start, i1 - start))
    whole = [p.c0 == 0 and p.c1 == plan.window and p.o1 - p.o0 == plan.block for p in pieces]
    first = whole.index(True) if any(whole) else 0
    last = first
    while last < len(pieces) and whole[last]:
        last += 1
    return BandedAxis(plan, matrix, matrix.t().contiguous(), tuple(pieces), (first, last))


def apply_cols(x: torch.Tensor, axis: BandedAxis, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The pass along the last axis of the 2-D `x` ([M, length] -> [M, outputs]), x.stride(1) == 1.

    With `out` (a [M, outputs] view with unit column stride, no gradient) every block's product is
    written into it in place.
    """
    mt = axis.matrix_t.to(x.dtype)
    plan, (j0, j1) = axis.plan, axis.interior
    rows = x.shape[0]
    windows = x[:, axis.pieces[j0].i0:].as_strided((j1 - j0, rows, plan.window), (plan.step, x.stride(0), 1)
                                                  ) if j1 > j0 else None
    if out is None:
        parts = {p.o0: x[:, p.i0:p.i1] @ mt[p.c0:p.c1, :p.o1 - p.o0] if p.i1 > p.i0
                 else x.new_zeros(rows, p.o1 - p.o0) for p in axis.edges}
        if windows is not None:
            product = torch.bmm(windows, mt.expand(j1 - j0, *mt.shape))
            parts[axis.pieces[j0].o0] = product.permute(1, 0, 2).reshape(rows, -1)
        return torch.cat([parts[o0] for o0 in sorted(parts)], dim=1)
    if windows is not None:
        blocks = out[:, axis.pieces[j0].o0:].as_strided((j1 - j0, rows, plan.block), (plan.block, out.stride(0), 1))
        torch.bmm(windows, mt.expand(j1 - j0, *mt.shape), out=blocks)
    for p in axis.edges:
        if p.i1 > p.i0:
            torch.mm(x[:, p.i0:p.i1], mt[p.c0:p.c1, :p.o1 - p.o0], out=out[:, p.o0:p.o1])
        else:
            out[:, p.o0:p.o1].zero_()
    return out


def apply_rows(x: torch.Tensor, axis: BandedAxis, out: Optional[torch.Tensor] = None,
               accumulate: bool = False) -> torch.Tensor:
    """The pass along the second-to-last axis of `x` ([..., length, N] -> [..., outputs, N], 2-D or 3-D;
    unit stride along N).

    With `out` (a view with unit stride along N, no gradient) every block's product is written into
    it, or added to it with `accumulate` (the terms of a 2-D filter of rank above one). 2-D inputs run
    their interior blocks as one batched product; 3-D ones (batches of planes) block by block.
    """
    m = axis.matrix.to(x.dtype)
    plan, (j0, j1) = axis.plan, axis.interior
    batched = x.ndim == 2 and j1 > j0
    pieces = axis.edges if batched else axis.pieces
    if batched:
        n = x.shape[1]
        windows = x[axis.pieces[j0].i0:].as_strided((j1 - j0, plan.window, n),
                                                    (plan.step * x.stride(0), x.stride(0), 1))
        weights = m.expand(j1 - j0, *m.shape)
    if out is None:
        parts = {p.o0: m[:p.o1 - p.o0, p.c0:p.c1] @ x[..., p.i0:p.i1, :] if p.i1 > p.i0
                 else x.new_zeros(*x.shape[:-2], p.o1 - p.o0, x.shape[-1]) for p in pieces}
        if batched:
            parts[axis.pieces[j0].o0] = torch.bmm(weights, windows).reshape(-1, n)
        return torch.cat([parts[o0] for o0 in sorted(parts)], dim=-2)
    if batched:
        blocks = out[axis.pieces[j0].o0:].as_strided((j1 - j0, plan.block, n),
                                                     (plan.block * out.stride(0), out.stride(0), 1))
        if accumulate:
            blocks.baddbmm_(weights, windows)
        else:
            torch.bmm(weights, windows, out=blocks)
    for p in pieces:
        target = out[..., p.o0:p.o1, :]
        if p.i1 > p.i0:
            _product(m[:p.o1 - p.o0, p.c0:p.c1], x[..., p.i0:p.i1, :], target, accumulate)
        elif not accumulate:
            target.zero_()
    return out


def _product(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor, accumulate: bool) -> None:
    """out (+)= a @ b for a 2-D `a` and a 2-D or batched 3-D `b`, in place."""
    if b.ndim == 3:
        a = a.expand(b.shape[0], *a.shape)
        if accumulate:
            out.baddbmm_(a, b)
        else:
            torch.bmm(a, b, out=out)
    elif accumulate:
        out.addmm_(a, b)
    else:
        torch.mm(a, b, out=out)


def separable_terms(f: torch.Tensor) -> Optional[list[tuple[torch.Tensor, torch.Tensor]]]:
    """(column, row) vector pairs whose outer products add up to the 2-D CPU filter `f`, or None when
    more than MAX_TERMS are needed (or `f` lives on another device, or torch.compile is tracing: the
    reference's dense 2-D convolution then runs).

    StyleGAN2's [1, 3, 3, 1] filter is one outer product; StyleGAN3-R's radial (jinc) filters are
    two to within 1e-6 (the third singular value is about 2e-7 of the first). Each term costs one
    cheap 1-D pass per axis, against a dense 2-D convolution for the whole filter.
    """
    if f.device.type != "cpu" or torch.compiler.is_compiling():
        return None  # the rank is read back from the singular values: a sync per call, a break in a graph
    f64 = f.detach().to(torch.float64)
    u, s, vh = torch.linalg.svd(f64)
    tolerance = TERM_TOLERANCE.get(f.dtype, DEFAULT_TERM_TOLERANCE)
    rank = int((s > tolerance * s[0]).sum()) if s[0] > 0 else 1
    if rank > MAX_TERMS:
        return None
    scale = s[:rank].sqrt()
    return [((u[:, r] * scale[r]).to(f.dtype), (vh[r] * scale[r]).to(f.dtype)) for r in range(rank)]


Term = tuple[BandedAxis, BandedAxis]  # one separable term of a 2-D filter: (pass along W, pass along H)


def separable_passes(rows: torch.Tensor, terms: Sequence[Term], mid_shape: tuple[int, ...],
                     out: Optional[torch.Tensor] = None, mid: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The sum over `terms` of a W pass over the 2-D `rows` ([M, W] -> [M, Wo], then viewed as
    `mid_shape`, [..., H, N]) followed by an H pass ([..., Ho, N]).

    With `out` and `mid` ([M, Wo]; eager inference only) the passes write into them in place, the
    later terms adding to `out`; without, every pass returns a new tensor (autograd, torch.compile).
    """
    if out is None:
        total = None
        for along_w, along_h in terms:
            y = apply_rows(apply_cols(rows, along_w).view(mid_shape), along_h)
            total = y if total is None else total + y
        return total
    for index, (along_w, along_h) in enumerate(terms):
        apply_cols(rows, along_w, out=mid)
        apply_rows(mid.view(mid_shape), along_h, out=out, accumulate=index > 0)
    return out


def upfirdn2d_banded(x: torch.Tensor, terms: Sequence[tuple[torch.Tensor, torch.Tensor]], up: tuple[int, int],
                     down: tuple[int, int], padding: tuple[int, int, int, int]) -> torch.Tensor:
    """upfirdn2d of NCHW `x` with the sum over `terms` of separable filters, each given as its
    correlation kernels (along W, along H), gain included."""
    px0, px1, py0, py1 = padding
    n, c, h, w = x.shape
    eager = eager_cpu_inference(x, *(g for term in terms for g in term))
    axes = [(banded_axis(gx, w, up[0], down[0], px0, px1, cached=eager),
             banded_axis(gy, h, up[1], down[1], py0, py1, cached=eager)) for gx, gy in terms]
    wo, ho = axes[0][0].plan.outputs, axes[0][1].plan.outputs
    rows, mid_shape = x.reshape(n * c * h, w), (n * c, h, wo)
    if eager:
        y = separable_passes(rows, axes, mid_shape, out=x.new_empty(n * c, ho, wo), mid=x.new_empty(n * c * h, wo))
    else:
        y = separable_passes(rows, axes, mid_shape)
    return y.reshape(n, c, ho, wo)
