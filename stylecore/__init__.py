"""stylecore: StyleGAN networks, checkpoint readers and techniques, importable without gradio."""
from __future__ import annotations

from typing import Any

__all__ = ["load_generator"]


def __getattr__(name: str) -> Any:
    # Lazy, so `import stylecore` stays light (no torch import until a loader is needed).
    if name == "load_generator":
        from stylecore.loader import load_generator

        return load_generator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
