"""The CUDA extensions behind kernels.ops, one module per op."""
from __future__ import annotations

from pathlib import Path

from kernels.spec import ExtensionSpec

CSRC = Path(__file__).resolve().parent / "csrc"

_SHARED_HEADERS = ("dispatch.h", "launch.cuh", "geometry.cuh")
_KERNEL_HEADERS = {
    "bias_act": ("bias_act.h", "bias_act_kernel.cuh"),
    "upfirdn2d": ("upfirdn2d.h", "upfirdn2d_kernel.cuh"),
    "filtered_lrelu": ("filtered_lrelu.h", "filtered_lrelu_kernel.cuh"),
}


def _cuda_op(name: str) -> ExtensionSpec:
    return ExtensionSpec(
        name=name,
        sources=(CSRC / f"{name}.cpp", CSRC / f"{name}.cu"),
        headers=tuple(CSRC / header for header in _SHARED_HEADERS + _KERNEL_HEADERS[name]),
        extra_cflags=("-O3",),
        extra_cuda_cflags=("-O3",),
    )


EXTENSIONS: dict[str, ExtensionSpec] = {name: _cuda_op(name) for name in _KERNEL_HEADERS}
