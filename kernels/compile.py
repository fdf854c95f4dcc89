"""Compile one extension into a given folder, in a child process.

The child runs torch.utils.cpp_extension.load (ninja) on a fresh folder, so torch's own lock file
there is always new; a child per build also keeps torch's in-process version counter from renaming
the module, keeps the compiler's output out of ours, and leaves this process's imports untouched.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from kernels.spec import ExtensionSpec

# Run with `python -c` from the (empty) build folder, so nothing beside it can shadow an import.
_CHILD = """
import json, sys
from torch.utils.cpp_extension import load
load(**json.loads(sys.argv[1]))
"""


@dataclass(frozen=True)
class CompileOutcome:
    ok: bool
    output: str  # compiler and ninja output, plus the traceback on failure
    seconds: float


def compile_into(spec: ExtensionSpec, build_dir: Path, arch: Optional[str], verbose: bool) -> CompileOutcome:
    """Build `spec` into `build_dir`; the child also imports the result, so ok means it loads."""
    args = {
        "name": spec.name,
        "sources": [str(path) for path in spec.sources],
        "extra_cflags": list(spec.extra_cflags),
        "extra_cuda_cflags": list(spec.extra_cuda_cflags),
        "build_directory": str(build_dir),
        "with_cuda": spec.with_cuda,
        "verbose": verbose,
    }
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(args)],
        cwd=build_dir,
        env=_child_env(spec, arch),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        check=False,
    )
    output = done.stdout.decode(errors="replace")
    return CompileOutcome(done.returncode == 0, output, time.monotonic() - started)


def _child_env(spec: ExtensionSpec, arch: Optional[str]) -> dict[str, str]:
    env = dict(os.environ)
    if spec.with_cuda:
        if arch:
            env["TORCH_CUDA_ARCH_LIST"] = arch  # exactly the arch in the cache key
        cuda_home = _cuda_home_if_guess_is_wrong(env)
        if cuda_home:
            env["CUDA_HOME"] = cuda_home
    return env


def _cuda_home_if_guess_is_wrong(env: dict[str, str]) -> Optional[str]:
    """Without CUDA_HOME, torch takes the folder above the nvcc on PATH; when that is a wrapper script
    (e.g. /usr/local/bin/nvcc) the guess has no CUDA headers. Point at the standard toolkit then."""
    if env.get("CUDA_HOME") or env.get("CUDA_PATH"):
        return None
    nvcc = shutil.which("nvcc", path=env.get("PATH"))
    if nvcc is None:
        return None
    guess = Path(os.path.realpath(nvcc)).parent.parent
    standard = Path("/usr/local/cuda")
    if (guess / "include" / "cuda_runtime.h").exists() or not (standard / "include" / "cuda_runtime.h").exists():
        return None
    return str(standard)
