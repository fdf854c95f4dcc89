"""The fast plain-torch path of filtered_lrelu: polyphase passes over cache-sized slices of channels.

The reference materialises the whole upsampled activation (4 or 16 times the layer's size) and
walks over it several times, so on a CPU it is bound by memory traffic. Here every slice of
channels goes through bias, upsampling, activation and downsampling while its upsampled copy
still fits in the cache, the filters run as block-banded products (banded.py) that skip the
inserted zeros, and the gain is folded into the upsampling filter (lrelu(g * v) = g * lrelu(v)
for g > 0).

A slice is held as [H, planes, W]: with the planes in the middle, a pass along H is one matrix
product per block over [window rows, planes * W] (contiguous) and a pass along W one over
[H * planes, window columns] (strided), so nothing is copied between passes. The input is read
once into that layout (the bias added on the way) and the result written once back to NCHW.
With slope 1 and no clamp the layer is linear: the up- and down-sampling filters of an axis are
then composed into one pass.

Eager CPU inference (banded.eager_cpu_inference) runs slice by slice on one thread, with cached
block matrices, the intermediates in per-thread scratch buffers (scratch.py) and the activation in
place. Otherwise (a gradient is needed, torch.compile is tracing, another device) the same passes
run over all planes at once as plain tensor ops: what autograd differentiates and torch.compile
captures in one graph (no cache, buffer or thread setting for it to trip over).
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Optional, Sequence, Union

import torch
import torch.nn.functional as F

from stylecore.ops.args import parse_padding
from stylecore.ops.banded import Term, banded_axis, eager_cpu_inference, separable_passes
from stylecore.ops.cpu_cache import cache_bytes
from stylecore.ops.scratch import scratch
from stylecore.ops.upfirdn2d import correlation_terms

# Outputs per block (banded.py), measured per kind of pass on a 2-core AMD EPYC (AVX2) with MKL:
# a pass along W is [H * planes, window] @ [window, block] (BLAS is slow below a block of 16), one
# along H [block, window] @ [window, planes * W] (fast even for small blocks). A larger block wastes
# more multiplications with zeros: (window - taps / up) per output, and a downsampling window grows
# by `down` inputs per output.
COLS_BLOCK = {"up": 48, "down": 16}
ROWS_BLOCK = {"up": 16, "down": 8}

Terms = list[tuple[torch.Tensor, torch.Tensor]]
Stage = list[Term]  # (along W, along H) per separable term, summed


def slice_budget() -> int:
    """Bytes of the largest intermediate per slice: twice the per-core L2 cache (4 MiB if unknown)."""
    l2 = cache_bytes(2)
    return 2 * l2 if l2 else 4 << 20


SLICE_BYTES = slice_budget()


def filtered_lrelu_sliced(
    x: torch.Tensor,
    fu: Optional[torch.Tensor],
    fd: Optional[torch.Tensor],
    b: Optional[torch.Tensor],
    up: int,
    down: int,
    padding: Union[int, Sequence[int]],
    gain: float,
    slope: float,
    clamp: Optional[float],
    flip_filter: bool,
) -> Optional[torch.Tensor]:
    """Same result as the reference filtered_lrelu (gain > 0), computed slice by slice; None where
    banded passes do not pay (the caller runs the reference): no resampling at all (a toRGB layer),
    or a 2-D filter of too high a rank."""
    if fu is None and fd is None and up == down == 1:
        return None
    n, c, h, w = x.shape
    up_terms = _terms(fu, x, flip_filter, up ** 2 * gain)
    down_terms = _terms(fd, x, flip_filter, 1.0)
    if up_terms is None or down_terms is None:
        return None
    linear = slope == 1 and (clamp is None or clamp < 0)
    eager = eager_cpu_inference(x, b, *(g for term in up_terms + down_terms for g in term))
    stages = _stages(up_terms, down_terms, h, w, up, down, parse_padding(padding), linear, cached=eager)
    planes = x.reshape(n * c, h, w)
    bias = None if b is None else b.to(x.dtype).repeat(n)
    ho, wo = stages[-1][0][1].plan.outputs, stages[-1][0][0].plan.outputs
    if not eager:
        y = _slice(planes, bias, stages, linear, slope, clamp, reuse=False)
        return y.permute(1, 0, 2).reshape(n, c, ho, wo)
    return _in_slices(planes, bias, stages, linear, slope, clamp).view(n, c, ho, wo)


def _in_slices(planes: torch.Tensor, bias: Optional[torch.Tensor], stages: list[Stage], linear: bool,
               slope: float, clamp: Optional[float]) -> torch.Tensor:
    """[P, h, w] -> [P, Ho, Wo], SLICE_BYTES of the largest intermediate at a time, on one thread, in
    scratch buffers (eager CPU inference only)."""
    p, h, w = planes.shape
    out = planes.new_empty(p, stages[-1][0][1].plan.outputs, stages[-1][0][0].plan.outputs)
    step = max(1, SLICE_BYTES // (_plane_elements(stages, h, w) * planes.element_size()))
    with _one_thread():
        for start in range(0, p, step):
            stop = min(start + step, p)
            y = _slice(planes[start:stop], None if bias is None else bias[start:stop], stages, linear, slope,
                       clamp, reuse=True)
            out[start:stop].copy_(y.permute(1, 0, 2))
    return out


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """The slices' many small products on this thread alone: waking a second OpenMP thread for each
    (passive wait policy; a virtual machine's wake-ups are slow) cost more than it gave (measured:
    StyleGAN3-T 256 px on 2 cores, 11.7 s with two threads, see the closing note of issue 18)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _terms(f: Optional[torch.Tensor], x: torch.Tensor, flip_filter: bool, gain: float) -> Optional[Terms]:
    """upfirdn2d's separable terms of the filter in `x`'s dtype, the identity for None."""
    if f is None:
        g = x.new_full([1], gain ** 0.5)
        return [(g, g)]
    return correlation_terms(f.to(x.dtype), flip_filter, gain)


def _stages(up_terms: Terms, down_terms: Terms, h: int, w: int, up: int, down: int,
            padding: tuple[int, int, int, int], linear: bool, cached: bool) -> list[Stage]:
    """The passes: [up, down] around the activation, or one composed stage for a linear layer.
    `cached`: the block matrices memoised (eager inference only, see banded.banded_axis)."""
    px0, px1, py0, py1 = padding
    if linear and len(up_terms) == 1 and len(down_terms) == 1:
        (gxu, gyu), (gxd, gyd) = up_terms[0], down_terms[0]
        kind = "down" if down > 1 else "up"
        return [[(banded_axis(_compose(gxu, gxd), w, up, down, px0, px1, COLS_BLOCK[kind], cached),
                  banded_axis(_compose(gyu, gyd), h, up, down, py0, py1, ROWS_BLOCK[kind], cached))]]
    up_stage = [(banded_axis(gx, w, up, 1, px0, px1, COLS_BLOCK["up"], cached),
                 banded_axis(gy, h, up, 1, py0, py1, ROWS_BLOCK["up"], cached)) for gx, gy in up_terms]
    wu, hu = up_stage[0][0].plan.outputs, up_stage[0][1].plan.outputs
    down_stage = [(banded_axis(gx, wu, 1, down, 0, 0, COLS_BLOCK["down"], cached),
                   banded_axis(gy, hu, 1, down, 0, 0, ROWS_BLOCK["down"], cached)) for gx, gy in down_terms]
    return [up_stage, down_stage]


def _compose(g_up: torch.Tensor, g_down: torch.Tensor) -> torch.Tensor:
    """The correlation kernel of an up pass followed by a down pass (no padding): their convolution."""
    taps = g_up.shape[0] + g_down.shape[0] - 1
    return F.conv1d(g_up.reshape(1, 1, -1), g_down.flip(0).reshape(1, 1, -1), padding=g_down.shape[0] - 1
                    ).reshape(taps)


def _plane_elements(stages: list[Stage], h: int, w: int) -> int:
    """Elements per plane of the largest intermediate of the passes."""
    largest = h * w
    for stage in stages:
        along_w, along_h = stage[0]
        largest = max(largest, h * along_w.plan.outputs, along_h.plan.outputs * along_w.plan.outputs)
        h, w = along_h.plan.outputs, along_w.plan.outputs
    return largest


def _slice(planes: torch.Tensor, bias: Optional[torch.Tensor], stages: list[Stage], linear: bool, slope: float,
           clamp: Optional[float], reuse: bool) -> torch.Tensor:
    """[P, h, w] planes -> [Ho, P, Wo]: bias, passes, activation. `reuse`: scratch buffers, in place."""
    p, h, w = planes.shape
    source = planes.permute(1, 0, 2)
    if reuse:
        t = scratch(0, (h, p, w), planes.dtype)
        if bias is None:
            t.copy_(source)
        else:
            torch.add(source, bias.reshape(1, p, 1), out=t)
    else:
        t = (source if bias is None else source + bias.reshape(1, p, 1)).contiguous()
    slot = 0
    for index, stage in enumerate(stages):
        slot = 2 - slot  # input and output alternate between buffers 0 and 2; buffer 1 holds the middle
        t = _stage(t, stage, slot if reuse else None)
        if index == 0 and not linear:
            t = _leaky_clamp(t, slope, clamp, in_place=reuse)
    return t


def _stage(t: torch.Tensor, stage: Stage, out_slot: Optional[int]) -> torch.Tensor:
    """[H, P, W] -> [Ho, P, Wo]: the sum over the stage's separable terms of a W pass then an H pass,
    into scratch buffers 1 (the middle) and `out_slot` when given."""
    h, p, w = t.shape
    wo, ho = stage[0][0].plan.outputs, stage[0][1].plan.outputs
    rows, mid_shape = t.view(h * p, w), (h, p * wo)
    if out_slot is None:
        y = separable_passes(rows, stage, mid_shape)
    else:
        y = separable_passes(rows, stage, mid_shape, out=scratch(out_slot, (ho, p * wo), t.dtype),
                             mid=scratch(1, (h * p, wo), t.dtype))
    return y.view(ho, p, wo)


def _leaky_clamp(y: torch.Tensor, slope: float, clamp: Optional[float], in_place: bool) -> torch.Tensor:
    if slope != 1:
        y = F.leaky_relu_(y, slope) if in_place else F.leaky_relu(y, slope)
    if clamp is not None and clamp >= 0:
        y = y.clamp_(-clamp, clamp) if in_place else y.clamp(-clamp, clamp)
    return y
