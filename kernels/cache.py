"""The on-disk cache of finished builds: one folder `<name>-<digest>` per build, holding the module
and a manifest. Folders appear only complete (a finished build is renamed into place), so a
folder with its module in it can be imported without rebuilding or running ninja."""
from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Optional

from kernels.spec import ExtensionSpec

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class CacheEntry:
    root: Path
    spec: ExtensionSpec
    digest: str

    @property
    def path(self) -> Path:
        return self.root / f"{self.spec.name}-{self.digest}"

    @property
    def library(self) -> Path:
        return self.path / self.spec.library_name

    @property
    def lock_path(self) -> Path:
        """Beside the folder, not in it: the folder must not exist until the build is complete."""
        return self.root / f"{self.spec.name}-{self.digest}.lock"

    def complete(self) -> bool:
        return self.library.is_file()

    def new_build_dir(self) -> Path:
        """A fresh private folder on the cache's file system, so the finished build can be renamed in."""
        self.root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", dir=self.root))

    def install(self, build_dir: Path, manifest: dict) -> None:
        """Move a finished build into place atomically; when another process got there first, keep theirs."""
        for item in build_dir.iterdir():
            if item.name != self.spec.library_name:
                shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()
        (build_dir / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        build_dir.chmod(0o755)  # mkdtemp made it private; the finished build is for every reader of the cache
        if self.path.exists() and not self.complete():
            # Not a build in progress (those live in temp folders): a manual copy or a leftover
            # (a torch `lock` baton, say) that would otherwise shadow the cache forever.
            shutil.rmtree(self.path, ignore_errors=True)
        try:
            os.rename(build_dir, self.path)
        except OSError:
            if not self.complete():
                raise

    def import_module(self) -> ModuleType:
        """Load the cached module straight from its file (no torch builder, no ninja)."""
        name = self.spec.name
        loader = importlib.machinery.ExtensionFileLoader(name, str(self.library))
        module_spec = importlib.util.spec_from_file_location(name, self.library, loader=loader)
        if module_spec is None:
            raise ImportError(f"cannot import {self.library}")
        module = importlib.util.module_from_spec(module_spec)
        loader.exec_module(module)
        return module


def read_manifest(folder: Path) -> Optional[dict]:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
