"""When the ops hand a call to the CUDA kernels of kernels/ (see kernel_check.py for the check).

Only after the kernels are built for the device and have matched the reference ops on it (a
miscompiled or foreign-GPU kernel then costs a one-line notice, not wrong images), and, under
`auto`, never at the cost of a request: the first call starts the build and the check in the
background and the torch ops serve until they are done. `fast` waits for them instead.
"""
from __future__ import annotations

import functools
import importlib.util
import sys
import threading
from pathlib import Path
from types import ModuleType
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
KERNELS_DIR = Path(__file__).resolve().parents[2] / "kernels"  # the checkout's; not part of an installed stylecore


@functools.lru_cache(maxsize=None)
def checkout_kernels() -> Optional[ModuleType]:
    """The checkout's kernels/ package, found by its path (so also for `pip install -e .` run from another
    folder, and never PyPI's unrelated package of the same name); None, with a one-line notice, when this
    stylecore was installed without it."""
    init = KERNELS_DIR / "__init__.py"
    loaded = sys.modules.get("kernels")
    if loaded is not None and Path(getattr(loaded, "__file__", "") or "").resolve() == init:
        return loaded
    if not init.is_file():
        print("stylecore: CUDA kernels not used (kernels/ comes with the checkout, not with an installed "
              "stylecore); using the torch ops", file=sys.stderr, flush=True)
        return None
    spec = importlib.util.spec_from_file_location("kernels", init, submodule_search_locations=[str(KERNELS_DIR)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["kernels"] = module
    spec.loader.exec_module(module)
    return module


def cuda_kernel_ops(x: torch.Tensor):
    """kernels.ops when the call on `x` should go to the CUDA kernels, else None (torch ops)."""
    if not x.is_cuda:
        return None
    impl = current_impl()
    if impl not in ("fast", "auto"):
        return None
    kernels = checkout_kernels()
    if kernels is None or not kernels.enabled() or not GATE.usable(x.device, wait=impl == "fast"):
        return None
    from kernels import ops as kernel_ops

    return kernel_ops
