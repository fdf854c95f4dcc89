"""`pickle.dump` that names numpy's functions by their numpy 1.x module, as the published files do.

numpy 2 moved `numpy.core` to `numpy._core`, so pickling a numpy scalar or array today names
`numpy._core.multiarray.scalar` / `numpy._core.multiarray._reconstruct`; every published checkpoint
was written with numpy 1.x and names `numpy.core.multiarray.*` (reference/real_files.md §1). The
pure-Python pickler (`pickle._Pickler`) lets one method write that name; everything else is
pickled exactly as `pickle.dump` does. With numpy 1.x installed nothing is renamed.
"""
from __future__ import annotations

import pickle
from typing import Any, BinaryIO, Optional

_MOVED, _PUBLISHED = "numpy._core", "numpy.core"


class _Numpy1Pickler(pickle._Pickler):
    def save_global(self, obj: Any, name: Optional[str] = None) -> None:
        module = getattr(obj, "__module__", None) or ""
        if module != _MOVED and not module.startswith(_MOVED + "."):
            super().save_global(obj, name)
            return
        module = _PUBLISHED + module[len(_MOVED):]
        name = name or obj.__qualname__
        if self.proto >= 4:  # the opcodes pickle itself writes for a global, under the old module name
            self.save(module)
            self.save(name)
            self.write(pickle.STACK_GLOBAL)
        else:
            self.write(pickle.GLOBAL + f"{module}\n{name}\n".encode("utf-8"))
        self.memoize(obj)


def dump(obj: Any, file: BinaryIO, protocol: int) -> None:
    """`pickle.dump(obj, file, protocol)`, with numpy functions named `numpy.core.*`."""
    _Numpy1Pickler(file, protocol=protocol).dump(obj)
