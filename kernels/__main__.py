"""Command line: `python -m kernels build [NAME ...] [--arch 9.0]` prebuilds the extensions (for a
GPU machine, or for a given architecture on a machine without one); `python -m kernels info`
shows what the cache holds."""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from kernels import fingerprint, settings
from kernels.build import ensure_built
from kernels.cache import CacheEntry, read_manifest
from kernels.extensions import EXTENSIONS


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kernels", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build the extensions into the cache (exit 1 if any is not built)")
    build.add_argument("names", nargs="*", metavar="NAME",
                       help=f"extensions to build (default: all of {', '.join(sorted(EXTENSIONS))})")
    build.add_argument("--arch", help="CUDA architectures to compile for, e.g. 9.0 (sets TORCH_CUDA_ARCH_LIST)")
    commands.add_parser("info", help="list the cached builds")
    args = parser.parse_args(argv)
    if args.command == "build":
        unknown = sorted(set(args.names) - set(EXTENSIONS))
        if unknown:
            parser.error(f"unknown extension {', '.join(unknown)}: choose from {', '.join(sorted(EXTENSIONS))}")
        return _build(args.names or sorted(EXTENSIONS), args.arch)
    return _info()


def _build(names: Sequence[str], arch: Optional[str]) -> int:
    if arch:
        os.environ["TORCH_CUDA_ARCH_LIST"] = arch
    all_built = True
    for name in names:
        result = ensure_built(EXTENSIONS[name])
        if result.status == "built":
            print(f"{name}: built in {result.seconds:.0f} s")
        elif result.status == "cached":
            print(f"{name}: cached")
        else:
            all_built = False
            print(f"{name}: {result.status}: {result.reason}")
    print(f"cache: {settings.cache_root()}")
    return 0 if all_built else 1


def _info() -> int:
    root = settings.cache_root()
    print(f"cache: {root}")
    current = set()
    for name, spec in sorted(EXTENSIONS.items()):
        arch = fingerprint.cuda_arch() if spec.with_cuda else None
        entry = CacheEntry(root, spec, fingerprint.digest(fingerprint.build_inputs(spec, arch)))
        current.add(entry.path.name)
        state = "cached" if entry.complete() else "not built"
        print(f"{name}: {state} for this torch/python/arch ({arch or 'no CUDA arch'}) as {entry.path.name}")
    folders = sorted(root.iterdir()) if root.is_dir() else []
    for folder in folders:
        if folder.is_dir() and folder.name not in current:
            print(f"  {folder.name}: {_describe(folder)}")
    return 0


def _describe(folder: Path) -> str:
    if folder.name.startswith("."):
        return "temporary build folder (a build in progress, or left by a killed one)"
    manifest = read_manifest(folder)
    if manifest is None:
        return "no manifest (not a finished build)"
    return (f"torch {manifest.get('torch')}, CUDA {manifest.get('torch_cuda')}, arch {manifest.get('arch')}, "
            f"{manifest.get('python')}, built {manifest.get('built_at')} in {manifest.get('build_seconds')} s")


if __name__ == "__main__":
    sys.exit(main())
