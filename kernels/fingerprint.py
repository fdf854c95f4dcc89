"""The cache key of a build: everything that changes the compiled binary or whether it loads."""
from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from typing import Optional

import torch

from kernels.spec import ExtensionSpec


def cuda_arch() -> Optional[str]:
    """GPU architectures to compile for: TORCH_CUDA_ARCH_LIST when set (how a machine without a GPU
    builds for one), else the current device's compute capability, else None."""
    configured = os.environ.get("TORCH_CUDA_ARCH_LIST", "").strip()
    if configured:
        return configured
    if torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability()
        return f"{major}.{minor}"
    return None


def build_inputs(spec: ExtensionSpec, arch: Optional[str]) -> dict:
    """The hashed inputs, also written beside the build so `python -m kernels info` can show them."""
    files = [[path.name, hashlib.sha256(path.read_bytes()).hexdigest()] for path in spec.sources + spec.headers]
    return {
        "name": spec.name,
        "files": files,
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "arch": arch if spec.with_cuda else None,  # a C++-only module runs on any GPU
        "python": f"{sys.implementation.cache_tag}-{platform.machine()}",
        "cxx": os.environ.get("CXX", "c++"),
        "cflags": list(spec.extra_cflags),
        "cuda_cflags": list(spec.extra_cuda_cflags) if spec.with_cuda else [],
    }


def digest(inputs: dict) -> str:
    """Short stable hash of build_inputs(): names the cache folder."""
    text = json.dumps(inputs, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
