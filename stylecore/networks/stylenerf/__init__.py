"""StyleNeRF (Gu et al. 2022) with the official parameter names: camera, NeRF, volume rendering, upsampler, generator."""
from __future__ import annotations

from stylecore.networks.stylenerf.generator import Generator

__all__ = ["Generator"]
