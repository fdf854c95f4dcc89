"""Optional fast kernels for stylecore.ops: CUDA/C++ built with ninja on first use and cached.

Everything here degrades to None, so callers fall back to the plain-torch ops in stylecore.ops:
a failed build prints one line and never raises, a lock never hangs, and STYLECORE_KERNELS=0
turns it all off. `python -m kernels build` prebuilds (see kernels/__main__.py). Of stylecore,
kernels imports only the ops' argument parsing (stylecore.ops.args), so stylecore can import kernels.
"""
from __future__ import annotations

from types import ModuleType
from typing import Optional, Union

import torch

from kernels.build import BuildResult, ensure_built, load_extension
from kernels.extensions import EXTENSIONS
from kernels.settings import cache_root, enabled
from kernels.spec import ExtensionSpec

__all__ = [
    "BuildResult", "EXTENSIONS", "ExtensionSpec", "cache_root", "cuda_ready", "enabled", "ensure_built",
    "load", "load_extension",
]


def load(name: str) -> Optional[ModuleType]:
    """The compiled extension `name` (a key of EXTENSIONS), built on first use; None when unavailable."""
    return load_extension(EXTENSIONS[name])


def cuda_ready(device: Union[torch.device, str, int, None] = None) -> bool:
    """Whether the CUDA kernels can run on `device` (default: the current CUDA device).

    Builds the extensions for that device on the first call, which can take minutes; later calls
    and later processes find them in the cache.
    """
    if not enabled() or not torch.cuda.is_available():
        return False
    device = torch.device("cuda") if device is None else torch.device(device)
    if device.type != "cuda":
        return False
    with torch.cuda.device(device):
        return all(load(name) is not None for name in EXTENSIONS)
