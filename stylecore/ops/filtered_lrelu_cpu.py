"""The fast plain-torch path of filtered_lrelu: polyphase passes over cache-sized slices of channels.

The reference materialises the whole upsampled activation (4 or 16 times the layer's size) and
walks over it several times, so on a CPU it is bound by memory traffic. Here every slice of
channels goes through bias, upsampling, activation and downsampling while its upsampled copy
still fits in the cache, the filters run as block-banded products (banded.py) that skip the
inserted zeros, and the gain is folded into the upsampling filter (lrelu(g * v) = g * lrelu(v)
for g > 0).
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F

from stylecore.ops.upfirdn2d import filter_size, parse_padding, upfirdn2d

SLICE_BYTES = 4 << 20  # upsampled activation per slice: about what the L2/L3 caches keep hot


def channels_per_slice(x: torch.Tensor, up: int, padding: tuple[int, int, int, int], fu_size: tuple[int, int]
                       ) -> int:
    """How many of the N*C planes of `x` to process at once so the upsampled slice stays cached (CPU)."""
    if x.device.type != "cpu":
        return x.shape[0] * x.shape[1]  # a GPU wants few large launches, not cache-sized slices
    px0, px1, py0, py1 = padding
    height = x.shape[2] * up + py0 + py1 - fu_size[1] + 1
    width = x.shape[3] * up + px0 + px1 - fu_size[0] + 1
    plane = max(height * width, 1) * x.element_size()
    return max(1, SLICE_BYTES // plane)


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
) -> torch.Tensor:
    """Same result as the reference filtered_lrelu (gain > 0), computed slice by slice."""
    n, c, h, w = x.shape
    pad = parse_padding(padding)
    planes = x.reshape(1, n * c, h, w)
    bias = None if b is None else b.to(x.dtype).repeat(n)
    # In place only on tensors this function made: without an up filter `y` may alias `x`.
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or (b is not None and b.requires_grad))
    in_place = fu is not None and not needs_grad
    step = channels_per_slice(x, up, pad, filter_size(fu))
    outputs = []
    for start in range(0, n * c, step):
        y = planes[:, start:start + step]
        if bias is not None:
            y = y + bias[start:start + step].reshape(1, -1, 1, 1)
        y = upfirdn2d(y, fu, up=up, padding=pad, flip_filter=flip_filter, gain=up ** 2 * gain)
        y = _leaky_clamp(y, slope, clamp, in_place)
        outputs.append(upfirdn2d(y, fd, down=down, flip_filter=flip_filter))
    y = torch.cat(outputs, dim=1) if len(outputs) > 1 else outputs[0]
    return y.reshape(n, c, y.shape[2], y.shape[3])


def _leaky_clamp(y: torch.Tensor, slope: float, clamp: Optional[float], in_place: bool) -> torch.Tensor:
    if slope != 1:
        y = F.leaky_relu_(y, slope) if in_place else F.leaky_relu(y, slope)
    if clamp is not None and clamp >= 0:
        y = y.clamp_(-clamp, clamp) if in_place else y.clamp(-clamp, clamp)
    return y
