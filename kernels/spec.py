"""What one extension module is made of: the inputs of both its build and its cache key."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ExtensionSpec:
    """Sources compiled into the Python extension module `name`.

    `headers` are not compiled but are part of the cache key, so editing a header rebuilds.
    """

    name: str
    sources: tuple[Path, ...]
    headers: tuple[Path, ...] = ()
    extra_cflags: tuple[str, ...] = ()
    extra_cuda_cflags: tuple[str, ...] = ()

    @property
    def with_cuda(self) -> bool:
        return any(path.suffix == ".cu" for path in self.sources)

    @property
    def library_name(self) -> str:
        """File name torch's builder gives the module (torch uses .so on Linux and macOS)."""
        return f"{self.name}.so"
