"""The `conv floor` row of the generator bench: the network's own convolutions alone.

One synthesis call is recorded (every conv2d / conv_transpose2d that mixes channels, i.e. not a
depthwise FIR filter), then the same calls, with the same shapes, dtypes and arguments, are
replayed on random data. No implementation of the non-convolution ops can beat that time, so
`latency / floor` says how much the filters, activations and copies add, on any machine.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch.overrides import TorchFunctionMode

CONVOLUTIONS = ("conv2d", "conv_transpose2d")


@dataclass(frozen=True)
class TensorSpec:
    """A tensor argument of a recorded call: only its shape is kept."""

    shape: tuple[int, ...]


@dataclass(frozen=True)
class ConvCall:
    name: str
    dtype: torch.dtype
    args: tuple[Any, ...]  # input, weight and the rest as given, tensors as TensorSpec
    kwargs: dict[str, Any]


def _spec(value: Any) -> Any:
    return TensorSpec(tuple(value.shape)) if isinstance(value, torch.Tensor) else value


class _Recorder(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[ConvCall] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in CONVOLUTIONS and args[1].shape[1] > 1:
            self.calls.append(ConvCall(name, args[0].dtype, tuple(_spec(a) for a in args),
                                       {k: _spec(v) for k, v in kwargs.items()}))
        return func(*args, **kwargs)


def record_convolutions(run: Callable[[], Any]) -> list[ConvCall]:
    """The channel-mixing convolutions that `run()` performs, in order."""
    with torch.no_grad(), _Recorder() as recorder:
        run()
    return recorder.calls


def replay(calls: list[ConvCall], device: torch.device) -> Callable[[Any], torch.Tensor]:
    """A call running `calls` on random data (views of one buffer: no extra memory per call)."""
    specs = [a for c in calls for a in (*c.args, *c.kwargs.values()) if isinstance(a, TensorSpec)]
    largest = max(math.prod(spec.shape) for spec in specs)
    buffers = {dtype: torch.randn(largest, device=device).to(dtype) for dtype in {c.dtype for c in calls}}

    def value(arg: Any, dtype: torch.dtype) -> Any:
        return buffers[dtype][:math.prod(arg.shape)].view(arg.shape) if isinstance(arg, TensorSpec) else arg

    prepared = [(getattr(torch.nn.functional, c.name), tuple(value(a, c.dtype) for a in c.args),
                 {k: value(v, c.dtype) for k, v in c.kwargs.items()}) for c in calls]

    def run(_: Any) -> torch.Tensor:
        out = None
        for func, args, kwargs in prepared:
            out = func(*args, **kwargs)
        return out

    return run
