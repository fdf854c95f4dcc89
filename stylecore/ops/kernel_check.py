"""The CUDA kernels' admission test: built for the device, and equal to the reference ops on it.

Kept apart from cuda_kernels.py (which the ops import to dispatch) because it imports the ops it
compares against; stylecore.ops installs `prepare_cuda` into the gate.
"""
from __future__ import annotations

from typing import Optional

import torch

from stylecore.ops.bias_act import bias_act
from stylecore.ops.filtered_lrelu import filtered_lrelu
from stylecore.ops.impl import use_impl
from stylecore.ops.upfirdn2d import upfirdn2d

# Relative tolerance of the self-check per dtype: the kernels accumulate in float32 like the
# reference's convolutions, so what differs is rounding of the inputs and outputs.
SELF_CHECK_TOLERANCE = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 5e-2}


def self_check(kernel_ops, device: torch.device) -> Optional[str]:
    """Compare each kernel with the reference op on small random inputs; the reason of a mismatch."""
    gen = torch.Generator().manual_seed(0)
    x32 = torch.randn(2, 3, 19, 17, generator=gen).to(device)
    b32 = torch.randn(3, generator=gen).to(device)
    fu = torch.randn(12, generator=gen).to(device)
    fd = torch.randn(12, generator=gen).to(device)
    fd2 = torch.randn(8, 8, generator=gen).to(device)  # a 2-D filter, as StyleGAN3-R's radial ones
    for dtype, tolerance in SELF_CHECK_TOLERANCE.items():
        x, b = x32.to(dtype), b32.to(dtype)
        cases = {
            "upfirdn2d": (upfirdn2d, dict(f=fu, up=2, down=1, padding=[5, 6, 4, 3], gain=4.0)),
            "bias_act": (bias_act, dict(b=b, act="lrelu", clamp=0.5)),
            "filtered_lrelu": (filtered_lrelu, dict(fu=fu, fd=fd, b=b, up=2, down=2, padding=[9, 8, 7, 10],
                                                    clamp=0.7)),
            "filtered_lrelu (2-D)": (filtered_lrelu, dict(fu=fu, fd=fd2, b=b, up=2, down=2, padding=[7, 6, 5, 8])),
        }
        with torch.no_grad():
            for name, (reference_op, kwargs) in cases.items():
                out = getattr(kernel_ops, reference_op.__name__)(x, **kwargs)
                if out is None:
                    return f"{name} did not run on {dtype}"
                with use_impl("ref"):
                    ref = reference_op(x, **kwargs)
                if out.shape != ref.shape or out.dtype != ref.dtype:
                    return (f"{name} gave {tuple(out.shape)} {out.dtype}, the reference {tuple(ref.shape)} "
                            f"{ref.dtype}")
                err = ((out.float() - ref.float()).abs().max() / ref.float().abs().max().clamp_min(1e-12)).item()
                if not err <= tolerance:
                    return f"{name} disagrees with the reference ops on {dtype}: max relative error {err:.1e}"
    return None


def prepare_cuda(device: torch.device) -> Optional[str]:
    """None when the kernels are built for `device` and pass the self-check, else why not."""
    from stylecore.ops.cuda_kernels import checkout_kernels

    kernels = checkout_kernels()
    if kernels is None:
        return "kernels/ is not installed"
    from kernels import ops as kernel_ops

    if not kernels.cuda_ready(device):
        return "not built"  # kernels printed the reason of the build failure
    return self_check(kernel_ops, device)
