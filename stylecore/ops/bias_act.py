"""Bias + activation + gain + clamp, the epilogue of every StyleGAN layer.

One entry point (`bias_act`): the CUDA kernel of kernels/ where it is usable; on the CPU the
epilogue after the bias runs in place when no gradient is needed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from stylecore.ops.cuda_kernels import cuda_kernel_ops
from stylecore.ops.impl import torch_fast_path


@dataclass(frozen=True)
class Activation:
    func: Callable[[torch.Tensor, float], torch.Tensor]
    def_alpha: float
    def_gain: float


ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation(lambda x, a: x, 0.0, 1.0),
    "relu": Activation(lambda x, a: F.relu(x), 0.0, math.sqrt(2)),
    "lrelu": Activation(lambda x, a: F.leaky_relu(x, a), 0.2, math.sqrt(2)),
    "tanh": Activation(lambda x, a: torch.tanh(x), 0.0, 1.0),
    "sigmoid": Activation(lambda x, a: torch.sigmoid(x), 0.0, 1.0),
    "elu": Activation(lambda x, a: F.elu(x), 0.0, 1.0),
    "selu": Activation(lambda x, a: F.selu(x), 0.0, 1.0),
    "softplus": Activation(lambda x, a: F.softplus(x), 0.0, 1.0),
    "swish": Activation(lambda x, a: torch.sigmoid(x) * x, 0.0, math.sqrt(2)),
}


def bias_act(
    x: torch.Tensor,
    b: Optional[torch.Tensor] = None,
    dim: int = 1,
    act: str = "linear",
    alpha: Optional[float] = None,
    gain: Optional[float] = None,
    clamp: Optional[float] = None,
) -> torch.Tensor:
    """Return clamp(act(x + b) * gain); `b` is broadcast along `dim`."""
    spec = ACTIVATIONS[act]
    kernel_ops = cuda_kernel_ops(x)
    if kernel_ops is not None:
        y = kernel_ops.bias_act(x, b, dim, act, alpha, gain, clamp)
        if y is not None:
            return y
    alpha = spec.def_alpha if alpha is None else float(alpha)
    gain = spec.def_gain if gain is None else float(gain)
    if b is not None:
        shape = [1] * x.ndim
        shape[dim] = -1
        x = x + b.reshape(shape)
    if b is not None and torch_fast_path(x) and not x.requires_grad:
        return _epilogue_in_place(x, act, alpha, gain, clamp)
    x = spec.func(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


IN_PLACE = {"linear": lambda x, a: x, "relu": lambda x, a: x.relu_(), "lrelu": F.leaky_relu_}


def _epilogue_in_place(x: torch.Tensor, act: str, alpha: float, gain: float, clamp: Optional[float]
                       ) -> torch.Tensor:
    """The activation, gain and clamp on the fresh tensor `x` itself: on a CPU every avoided
    allocation of a full-size activation saves a pass of page faults and memory traffic."""
    x = IN_PLACE[act](x, alpha) if act in IN_PLACE else ACTIVATIONS[act].func(x, alpha)
    if gain != 1:
        x = x.mul_(gain)
    if clamp is not None and clamp >= 0:
        x = x.clamp_(-clamp, clamp)
    return x
