"""stylecore: StyleGAN networks, checkpoint readers and techniques, importable without gradio."""
from __future__ import annotations

from typing import Any

__all__ = ["load_generator", "load_encoder"]


def __getattr__(name: str) -> Any:
    # Lazy, so `import stylecore` stays light (no torch import until a loader is needed).
    if name == "load_generator":
        from stylecore.formats.loader import load_generator

        return load_generator
    if name == "load_encoder":
        from stylecore.inversion.encoders import load_encoder

        return load_encoder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
