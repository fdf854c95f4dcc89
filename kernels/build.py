"""Find an extension in the cache or build it, without ever hanging or raising.

Order: a complete cache folder is imported directly; otherwise take the build lock (bounded
wait), look again, compile into a fresh private folder, rename it into place, import it. Every
failure becomes a BuildResult with a one-line reason, and leaves no folder behind.
"""
from __future__ import annotations

import shutil
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Optional

import torch

from kernels import fingerprint, settings
from kernels.cache import CacheEntry
from kernels.compile import compile_into
from kernels.failure import failure_reason, one_line
from kernels.lock import exclusive
from kernels.notice import report_unavailable
from kernels.spec import ExtensionSpec


@dataclass(frozen=True)
class BuildResult:
    name: str
    status: str  # "built", "cached", "failed" or "disabled"
    module: Optional[ModuleType] = None
    reason: str = ""
    path: Optional[Path] = None  # the cache folder
    seconds: float = 0.0  # compile time, when built now


_results: dict[str, BuildResult] = {}  # by cache folder: one attempt per process
_in_process = threading.Lock()  # threads of one process wait for one build instead of racing


def load_extension(spec: ExtensionSpec) -> Optional[ModuleType]:
    """The module built from `spec`, or None (after a one-line notice on stderr) when unavailable."""
    result = ensure_built(spec)
    if result.status == "failed":
        report_unavailable(spec, result.reason)
    return result.module


def ensure_built(spec: ExtensionSpec) -> BuildResult:
    """Import `spec` from the cache or build it first; says what happened instead of printing it."""
    if not settings.enabled():
        return BuildResult(spec.name, "disabled", reason="STYLECORE_KERNELS=0")
    with _in_process:
        arch = fingerprint.cuda_arch() if spec.with_cuda else None
        try:
            inputs = fingerprint.build_inputs(spec, arch)
        except OSError as error:
            return BuildResult(spec.name, "failed", reason=f"cannot read the sources: {one_line(str(error))}")
        entry = CacheEntry(settings.cache_root(), spec, fingerprint.digest(inputs))
        key = str(entry.path)
        if key not in _results:
            problem = _toolchain_problem(spec, arch)
            if problem:
                _results[key] = BuildResult(spec.name, "failed", reason=problem)
            else:
                _results[key] = _load_or_build(spec, entry, inputs, arch)
        return _results[key]


def _toolchain_problem(spec: ExtensionSpec, arch: Optional[str]) -> Optional[str]:
    if not spec.with_cuda:
        return None
    if torch.version.cuda is None:
        return "this torch build has no CUDA"
    if arch is None:
        return "no CUDA GPU to build for (set TORCH_CUDA_ARCH_LIST, e.g. `python -m kernels build --arch 9.0`)"
    return None


def _load_or_build(spec: ExtensionSpec, entry: CacheEntry, inputs: dict, arch: Optional[str]) -> BuildResult:
    if entry.complete():
        return _import(entry, "cached")
    try:
        entry.root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return BuildResult(spec.name, "failed", reason=f"cannot create the cache folder {entry.root}: {error.strerror}")
    with exclusive(entry.lock_path, settings.lock_timeout()):
        if entry.complete():  # another process built it while we waited
            return _import(entry, "cached")
        try:
            build_dir = entry.new_build_dir()
        except OSError as error:
            return BuildResult(spec.name, "failed", reason=f"cannot write the cache: {one_line(str(error))}")
        try:
            outcome = compile_into(spec, build_dir, arch, settings.verbose())
            if settings.verbose():
                sys.stderr.write(outcome.output)
            if not outcome.ok:
                return BuildResult(spec.name, "failed", reason=failure_reason(outcome.output))
            built_at = time.strftime("%Y-%m-%d %H:%M:%S")
            manifest = dict(inputs, build_seconds=round(outcome.seconds, 1), built_at=built_at)
            entry.install(build_dir, manifest)
        except OSError as error:
            return BuildResult(spec.name, "failed", reason=f"cannot write the cache: {one_line(str(error))}")
        finally:
            shutil.rmtree(build_dir, ignore_errors=True)  # gone already when it was renamed into place
    return _import(entry, "built", outcome.seconds)


def _import(entry: CacheEntry, status: str, seconds: float = 0.0) -> BuildResult:
    try:
        module = entry.import_module()
    except Exception as error:  # ImportError, OSError: a library that does not load is just unavailable
        return BuildResult(entry.spec.name, "failed", reason=f"import failed: {one_line(str(error))}", path=entry.path)
    return BuildResult(entry.spec.name, status, module=module, path=entry.path, seconds=seconds)
