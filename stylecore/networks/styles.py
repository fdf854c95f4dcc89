"""The layout of StyleSpace (S) as each synthesis network declares it: one entry per modulated layer.

Techniques read S through `G.synthesis.style_layers()` instead of probing a network's attributes.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StyleLayer:
    """One entry of S: which module makes it, which row of W+ feeds it, and its size."""

    index: int  # position in S (the "layer" of StyleSpace's layer_channel notation)
    name: str  # module path under G.synthesis, e.g. "b8.conv0" or "L3_52_512"
    w_index: int  # the W+ row its affine reads
    channels: int
    resolution: int  # feature-map side the layer works at
    is_torgb: bool
