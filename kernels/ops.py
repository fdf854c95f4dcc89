"""The CUDA kernels behind the signatures and semantics of stylecore.ops.

Each op returns None when its kernel cannot run the call: kernels off or not built, a CPU tensor,
float64, an argument form the kernel does not take, or gradients it does not provide. The caller
then runs the torch op, which also raises the errors for invalid arguments. kernels never imports
stylecore, so stylecore.ops can import this module.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Optional

import torch
from torch.autograd.function import once_differentiable

from kernels import settings
from stylecore.ops.args import IntOrPair, filter_size, pair, parse_padding
from kernels.build import load_extension
from kernels.extensions import EXTENSIONS

SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
SQRT2 = math.sqrt(2)

# (default alpha, default gain) per activation, as in stylecore.ops.bias_act.ACTIVATIONS.
ACTIVATION_DEFAULTS: dict[str, tuple[float, float]] = {
    "linear": (0.0, 1.0),
    "relu": (0.0, SQRT2),
    "lrelu": (0.2, SQRT2),
    "tanh": (0.0, 1.0),
    "sigmoid": (0.0, 1.0),
    "elu": (0.0, 1.0),
    "selu": (0.0, 1.0),
    "softplus": (0.0, 1.0),
    "swish": (0.0, SQRT2),
}

_SELU_SCALE, _SELU_ALPHA = 1.0507009873554805, 1.6732632423543772

# d act(y) / dy, from the pre-activation y = x + b (and alpha), for bias_act's backward.
_ACTIVATION_DERIVATIVES: dict[str, Callable[[torch.Tensor, float], torch.Tensor]] = {
    "linear": lambda y, a: torch.ones_like(y),
    "relu": lambda y, a: (y > 0).to(y.dtype),
    "lrelu": lambda y, a: (y > 0).to(y.dtype) * (1 - a) + a,
    "tanh": lambda y, a: 1 - torch.tanh(y) ** 2,
    "sigmoid": lambda y, a: torch.sigmoid(y) * (1 - torch.sigmoid(y)),
    "elu": lambda y, a: torch.exp(y.clamp(max=0)),
    "selu": lambda y, a: _SELU_SCALE * torch.where(y > 0, torch.ones_like(y), _SELU_ALPHA * torch.exp(y)),
    "softplus": lambda y, a: torch.sigmoid(y),
    "swish": lambda y, a: torch.sigmoid(y) * (1 + y * (1 - torch.sigmoid(y))),
}

_modules: dict[tuple[str, int], Optional[ModuleType]] = {}


def _module(name: str, x: torch.Tensor, dtype: torch.dtype) -> Optional[ModuleType]:
    """The extension for a call on `x` computing in `dtype`, loaded once per process and device."""
    if not (x.is_cuda and dtype in SUPPORTED_DTYPES and settings.enabled()):
        return None
    key = (name, x.device.index)
    if key not in _modules:
        with torch.cuda.device(x.device):  # build for this device's architecture
            _modules[key] = load_extension(EXTENSIONS[name])
    return _modules[key]


# --- upfirdn2d ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Resampling:
    """The arguments of one upfirdn2d call, per axis as (x, y)."""

    up: tuple[int, int]
    down: tuple[int, int]
    padding: tuple[int, int, int, int]  # x0, x1, y0, y1
    flip_filter: bool
    gain: float

    def adjoint(self, in_size: tuple[int, int], out_size: tuple[int, int], taps: tuple[int, int]) -> Resampling:
        """The call whose output is the gradient of this one's input: up and down swap, the filter
        flips, and per axis padding (p0, p1) becomes (k - 1 - p0, (n - 1) * up - m * down + p0 + 1)
        for n inputs, m outputs and k taps, which makes the output exactly n long.
        Sizes and taps are (width, height)."""
        pads = []
        for axis in (0, 1):
            p0 = self.padding[2 * axis]
            n, m, k = in_size[axis], out_size[axis], taps[axis]
            pads += [k - 1 - p0, (n - 1) * self.up[axis] - m * self.down[axis] + p0 + 1]
        return Resampling(self.down, self.up, (pads[0], pads[1], pads[2], pads[3]), not self.flip_filter, self.gain)


def run_upfirdn2d(module: ModuleType, x: torch.Tensor, f: Optional[torch.Tensor], r: Resampling) -> torch.Tensor:
    """Forward upfirdn2d through `module` (the compiled extension, or a stand-in with its signature)."""
    (upx, upy), (downx, downy), (px0, px1, py0, py1) = r.up, r.down, r.padding
    if f is None or f.ndim == 2:
        f2 = None if f is None else f.to(device=x.device, dtype=torch.float32)
        return module.upfirdn2d(x, f2, upx, upy, downx, downy, px0, px1, py0, py1, r.flip_filter, r.gain)
    # Separable: one pass per axis, sqrt(gain) each, as the reference does.
    f1 = f.to(device=x.device, dtype=torch.float32)
    g = r.gain ** 0.5
    x = module.upfirdn2d(x, f1.reshape(1, -1), upx, 1, downx, 1, px0, px1, 0, 0, r.flip_filter, g)
    return module.upfirdn2d(x, f1.reshape(-1, 1), 1, upy, 1, downy, 0, 0, py0, py1, r.flip_filter, g)


class _UpFirDn2d(torch.autograd.Function):
    """upfirdn2d is linear in x: its gradient is upfirdn2d with the adjoint resampling (itself
    differentiable the same way). No gradient for the filter."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, f: Optional[torch.Tensor], r: Resampling) -> torch.Tensor:
        module = _module("upfirdn2d", x, x.dtype)
        y = run_upfirdn2d(module, x, f, r)
        ctx.save_for_backward(f)
        ctx.resampling = r
        ctx.sizes = (x.shape[3], x.shape[2]), (y.shape[3], y.shape[2])
        return y

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        (f,) = ctx.saved_tensors
        in_size, out_size = ctx.sizes
        dx = None
        if ctx.needs_input_grad[0]:
            dx = _UpFirDn2d.apply(dy, f, ctx.resampling.adjoint(in_size, out_size, filter_size(f)))
        return dx, None, None


def upfirdn2d(
    x: torch.Tensor,
    f: Optional[torch.Tensor],
    up: IntOrPair = 1,
    down: IntOrPair = 1,
    padding: IntOrPair = 0,
    flip_filter: bool = False,
    gain: float = 1,
) -> Optional[torch.Tensor]:
    """stylecore.ops.upfirdn2d on CUDA, differentiable in x; None when the kernel cannot run it."""
    if x.ndim != 4 or (f is not None and f.ndim not in (1, 2)):
        return None
    if f is not None and f.requires_grad and torch.is_grad_enabled():
        return None  # the kernel has no filter gradient
    if _module("upfirdn2d", x, x.dtype) is None:
        return None
    r = Resampling(pair(up), pair(down), parse_padding(padding), bool(flip_filter), float(gain))
    return _UpFirDn2d.apply(x, f, r)


# --- bias_act ----------------------------------------------------------------------------------

class _BiasAct(torch.autograd.Function):
    """Forward in the kernel; backward in torch ops from the saved x and b (the kernel recomputes
    the unclamped output when a clamp needs it)."""

    @staticmethod
    def forward(ctx, x, b, dim: int, act: str, alpha: float, gain: float, clamp: float) -> torch.Tensor:
        module = _module("bias_act", x, x.dtype)
        ctx.save_for_backward(x, b)
        ctx.config = (dim, act, alpha, gain, clamp)
        return module.bias_act(x, b, dim, act, alpha, gain, clamp)

    @staticmethod
    @once_differentiable
    def backward(ctx, dy: torch.Tensor):
        x, b = ctx.saved_tensors
        dim, act, alpha, gain, clamp = ctx.config
        y = x if b is None else x + b.reshape([-1 if i == dim else 1 for i in range(x.ndim)])
        d = dy * (_ACTIVATION_DERIVATIVES[act](y, alpha) * gain)
        if clamp >= 0:
            unclamped = _module("bias_act", x, x.dtype).bias_act(x, b, dim, act, alpha, gain, -1.0)
            d = d * (unclamped.abs() <= clamp)
        dx = d.to(x.dtype) if ctx.needs_input_grad[0] else None
        db = None
        if b is not None and ctx.needs_input_grad[1]:
            others = [i for i in range(x.ndim) if i != dim]
            db = (d.sum(dim=others) if others else d).to(b.dtype)
        return dx, db, None, None, None, None, None


def bias_act(
    x: torch.Tensor,
    b: Optional[torch.Tensor] = None,
    dim: int = 1,
    act: str = "linear",
    alpha: Optional[float] = None,
    gain: Optional[float] = None,
    clamp: Optional[float] = None,
) -> Optional[torch.Tensor]:
    """stylecore.ops.bias_act on CUDA, differentiable in x and b; None when the kernel cannot run it."""
    def_alpha, def_gain = ACTIVATION_DEFAULTS[act]  # KeyError for an unknown activation, as the reference
    alpha = def_alpha if alpha is None else float(alpha)
    gain = def_gain if gain is None else float(gain)
    clamp = float(clamp) if clamp is not None and clamp >= 0 else -1.0
    if x.ndim == 0:
        return None
    dim = dim % x.ndim
    dtype = x.dtype
    if b is not None:
        if b.numel() != x.shape[dim] or b.device != x.device:
            return None  # a broadcast form the kernel does not take
        dtype = torch.result_type(x, b)
        b = b.reshape(-1).to(dtype)
    if _module("bias_act", x, dtype) is None:
        return None
    return _BiasAct.apply(x.to(dtype), b, dim, act, alpha, gain, clamp)


# --- filtered_lrelu ----------------------------------------------------------------------------

def _filter_2d(f: Optional[torch.Tensor], x: torch.Tensor) -> Optional[torch.Tensor]:
    """The 2-D float32 filter the 2-D kernel takes (beside a 2-D filter): a 1-D filter becomes its outer product."""
    if f is None:
        return None
    f = f.to(device=x.device, dtype=torch.float32)
    return torch.outer(f, f) if f.ndim == 1 else f


def filtered_lrelu(
    x: torch.Tensor,
    fu: Optional[torch.Tensor] = None,
    fd: Optional[torch.Tensor] = None,
    b: Optional[torch.Tensor] = None,
    up: int = 1,
    down: int = 1,
    padding: IntOrPair = 0,
    gain: float = SQRT2,
    slope: float = 0.2,
    clamp: Optional[float] = None,
    flip_filter: bool = False,
) -> Optional[torch.Tensor]:
    """stylecore.ops.filtered_lrelu in one CUDA kernel, forward only: None when a gradient is needed
    (the torch op provides it) or the kernel cannot run the call."""
    tensors = (x, fu, fd, b)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        return None
    if x.ndim != 4 or int(up) < 1 or int(down) < 1:
        return None
    if any(f is not None and f.ndim not in (1, 2) for f in (fu, fd)):
        return None
    if b is not None and (b.ndim != 1 or b.shape[0] != x.shape[1]):
        return None
    module = _module("filtered_lrelu", x, x.dtype)
    if module is None:
        return None
    return run_filtered_lrelu(module, x, fu, fd, b, int(up), int(down), padding, gain, slope, clamp, flip_filter)


def run_filtered_lrelu(module: ModuleType, x: torch.Tensor, fu: Optional[torch.Tensor], fd: Optional[torch.Tensor],
                       b: Optional[torch.Tensor], up: int, down: int, padding: IntOrPair, gain: float, slope: float,
                       clamp: Optional[float], flip_filter: bool) -> torch.Tensor:
    """Forward filtered_lrelu through `module` (the compiled extension, or a stand-in with its signature)."""
    px0, px1, py0, py1 = parse_padding(padding)
    bias = None if b is None else b.to(device=x.device, dtype=x.dtype).to(torch.float32)  # rounded like the reference
    clamp = float(clamp) if clamp is not None and clamp >= 0 else -1.0
    if all(f is None or f.ndim == 1 for f in (fu, fd)):  # the separable kernel: 1-D passes
        fu, fd = (None if f is None else f.to(device=x.device, dtype=torch.float32) for f in (fu, fd))
    else:
        fu, fd = _filter_2d(fu, x), _filter_2d(fd, x)
    return module.filtered_lrelu(x, fu, fd, bias, up, down, px0, px1, py0, py1, float(gain), float(slope), clamp,
                                 bool(flip_filter))
