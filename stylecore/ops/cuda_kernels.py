"""When the ops hand a call to the CUDA kernels of kernels/ (see kernel_check.py for the check).

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

from stylecore.ops.impl import current_impl

class KernelGate:
    """Per device: prepare the kernels once (build + check), then say whether they may be used."""

    def __init__(self, prepare: Optional[Callable[[torch.device], Optional[str]]] = None):
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

    def install(self, prepare: Callable[[torch.device], Optional[str]]) -> None:
        """Set how the kernels are prepared (built and checked) for a device."""
        self._prepare = prepare

    def _run(self, device: torch.device, key: str) -> None:
        try:
            reason = "no preparation installed" if self._prepare is None else self._prepare(device)
        except Exception as exc:  # a broken toolchain or driver must not take the app down
            reason = f"{type(exc).__name__}: {exc}"
        if reason is not None:
            print(f"stylecore: CUDA kernels not used on {key} ({reason}); using the torch ops",
                  file=sys.stderr, flush=True)
        self._usable[key] = reason is None


GATE = KernelGate()  # its preparation is installed by stylecore.ops (kernel_check compares with the ops)


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
