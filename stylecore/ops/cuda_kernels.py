"""When the ops hand a call to the CUDA kernels of kernels/.

Only after the kernels are built for the device and have matched the reference ops on it (a
miscompiled or foreign-GPU kernel then costs a one-line notice, not wrong images), and, under
`auto`, never at the cost of a request: the first call starts the build and the check in the
background and the torch ops serve until they are done. `fast` waits for them instead.
"""
from __future__ import annotations

import sys
import threading
from typing import Callable, Optional

import torch

from stylecore.ops.impl import current_impl, use_impl

# Relative tolerance of the self-check per dtype: the kernels accumulate in float32 like the
# reference's convolutions, so what differs is rounding of the inputs and outputs.
SELF_CHECK_TOLERANCE = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 5e-2}


class KernelGate:
    """Per device: prepare the kernels once (build + check), then say whether they may be used."""

    def __init__(self, prepare: Callable[[torch.device], Optional[str]]):
        self._prepare = prepare  # returns None when usable, else the reason they are not
        self._lock = threading.Lock()
        self._threads: dict[str, threading.Thread] = {}
        self._usable: dict[str, bool] = {}

    def usable(self, device: torch.device, wait: bool) -> bool:
        key = str(device)
        if key in self._usable:
            return self._usable[key]
        with self._lock:
            thread = self._threads.get(key)
            if thread is None:
                thread = threading.Thread(target=self._run, args=(device, key), daemon=True,
                                          name=f"stylecore-kernels-{key}")
                self._threads[key] = thread
                thread.start()
        if wait:
            thread.join()
        return self._usable.get(key, False)

    def _run(self, device: torch.device, key: str) -> None:
        try:
            reason = self._prepare(device)
        except Exception as exc:  # a broken toolchain or driver must not take the app down
            reason = f"{type(exc).__name__}: {exc}"
        if reason is not None:
            print(f"stylecore: CUDA kernels not used on {key} ({reason}); using the torch ops",
                  file=sys.stderr, flush=True)
        self._usable[key] = reason is None


def self_check(kernel_ops, device: torch.device) -> Optional[str]:
    """Compare each kernel with the reference op on small random inputs; the reason of a mismatch."""
    from stylecore.ops.bias_act import bias_act
    from stylecore.ops.filtered_lrelu import filtered_lrelu
    from stylecore.ops.upfirdn2d import upfirdn2d

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


def _prepare_cuda(device: torch.device) -> Optional[str]:
    import kernels
    from kernels import ops as kernel_ops

    if not kernels.cuda_ready(device):
        return "not built"  # kernels printed the reason of the build failure
    return self_check(kernel_ops, device)


GATE = KernelGate(_prepare_cuda)


def cuda_kernel_ops(x: torch.Tensor):
    """kernels.ops when the call on `x` should go to the CUDA kernels, else None (torch ops)."""
    if not x.is_cuda:
        return None
    impl = current_impl()
    if impl not in ("fast", "auto"):
        return None
    import kernels

    if not kernels.enabled() or not GATE.usable(x.device, wait=impl == "fast"):
        return None
    from kernels import ops as kernel_ops

    return kernel_ops
