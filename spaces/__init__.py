"""The hub's Gradio tabs, one module per tab; each holds a tab class whose `layout()` app.py calls.

This folder is importable as `spaces`, the name of Hugging Face's ZeroGPU package, which Gradio
imports at start-up and calls on a Space (`spaces.gradio_auto_wrap`). So this package also serves
that role: when Hugging Face's package is installed, its modules are merged in (its folder joins
`__path__` and its `__init__` runs here); when it is not, `GPU` and `gradio_auto_wrap` leave the
functions they are given unchanged. Nothing heavy is imported here: Gradio imports this package
while it is itself still being imported.
"""
from __future__ import annotations

import importlib.machinery
import os
import sys
from typing import Any, Callable, Optional

_HERE = os.path.dirname(os.path.abspath(__file__))


def _find_huggingface_spaces() -> Optional[str]:
    """The folder of Hugging Face's `spaces` package on sys.path, other than this one."""
    for entry in sys.path:
        if os.path.abspath(entry or os.getcwd()) == os.path.dirname(_HERE):
            continue
        spec = importlib.machinery.PathFinder.find_spec("spaces", [entry or os.getcwd()])
        locations = list(spec.submodule_search_locations or []) if spec else []
        if spec and spec.origin and locations and os.path.abspath(locations[0]) != _HERE:
            return locations[0]
    return None


_HF_SPACES_DIR = _find_huggingface_spaces()

if _HF_SPACES_DIR is not None:
    __path__.append(_HF_SPACES_DIR)  # type: ignore[name-defined]  # noqa: F821
    _init = os.path.join(_HF_SPACES_DIR, "__init__.py")
    with open(_init, encoding="utf-8") as _f:
        exec(compile(_f.read(), _init, "exec"))  # the installed package's own initialisation
else:

    def gradio_auto_wrap(fn: Callable) -> Callable:
        """Without ZeroGPU there is nothing to wrap."""
        return fn

    def GPU(fn: Optional[Callable] = None, **_: Any) -> Any:  # noqa: N802 - the package's name
        """`@spaces.GPU` and `@spaces.GPU(duration=...)` are no-ops without ZeroGPU."""
        return fn if fn is not None else (lambda f: f)
