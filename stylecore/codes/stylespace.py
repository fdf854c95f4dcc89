"""StyleSpace (S): the per-layer style vectors that the affine layers make from W+ (Wu et al. 2021).

S holds one vector per modulated layer, toRGB included, in synthesis order (for StyleGAN2 at 1024:
b4.conv1, b4.torgb, b8.conv0, b8.conv1, b8.torgb, ... = 26 layers, 9088 channels). Each vector is the
raw output of that layer's `affine`; the toRGB weight gain is applied afterwards by the network, as
in the official code, so these are the S values StyleSpace and StyleCLIP publish.

Rendering from S runs the real synthesis network on a lightweight copy in which each `affine` is
swapped for a module that returns the given styles. The copy shares every parameter and buffer, so
nothing is duplicated, and the loaded network is never modified, so requests running on it at the
same time are unaffected.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import numpy as np
import torch

from stylecore.networks.styles import StyleLayer

__all__ = ["StyleLayer", "style_layers", "ws_to_styles", "synthesize_from_styles", "replace_submodules",
           "styles_to_numpy", "save_styles", "load_styles", "style_layer_table"]


def style_layers(G: torch.nn.Module) -> list[StyleLayer]:
    """The layers of S for a StyleGAN2 or StyleGAN3 generator (any resolution), in synthesis order."""
    return G.synthesis.style_layers()


def style_layer_table(G: torch.nn.Module) -> list[list]:
    """Rows [index, name, W+ row, channels, resolution, toRGB] for showing S's layout to a user."""
    return [[l.index, l.name, l.w_index, l.channels, l.resolution, l.is_torgb] for l in style_layers(G)]


def ws_to_styles(G: torch.nn.Module, ws: torch.Tensor) -> list[torch.Tensor]:
    """W+ [N, num_ws, w_dim] -> S: one [N, channels] tensor per style layer (the affine outputs)."""
    if ws.ndim != 3 or ws.shape[1] != G.num_ws:
        raise ValueError(f"ws must have shape [N, {G.num_ws}, w_dim], got {list(ws.shape)}")
    ws = ws.to(torch.float32)
    return [G.synthesis.get_submodule(l.name).affine(ws[:, l.w_index]) for l in style_layers(G)]


class GivenStyles(torch.nn.Module):
    """Stands in for an `affine`: ignores w and returns the styles it was given."""

    def __init__(self, styles: torch.Tensor):
        super().__init__()
        self.styles = styles

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        if self.styles.shape[0] != w.shape[0]:
            raise ValueError(f"styles for {self.styles.shape[0]} images, but the batch has {w.shape[0]}")
        return self.styles.to(w.dtype)


def replace_submodules(root: torch.nn.Module, replacements: Mapping[str, torch.nn.Module]) -> torch.nn.Module:
    """A shallow copy of `root` with the submodules at the given dotted paths swapped.

    Only the modules on the way to a replaced one are copied; all parameters and buffers stay
    shared, and `root` itself is left untouched (safe while other threads use it).
    """
    clone = copy.copy(root)
    modules = dict(root._modules)
    nested: dict[str, dict[str, torch.nn.Module]] = {}
    for path, module in replacements.items():
        head, _, rest = path.partition(".")
        if head not in modules:
            raise KeyError(f"{type(root).__name__} has no submodule {head!r}")
        if rest:
            nested.setdefault(head, {})[rest] = module
        else:
            modules[head] = module
    for head, sub in nested.items():
        modules[head] = replace_submodules(root._modules[head], sub)
    clone.__dict__["_modules"] = modules
    return clone


def _check_styles(G: torch.nn.Module, styles: Sequence[torch.Tensor]) -> list[StyleLayer]:
    layers = style_layers(G)
    if len(styles) != len(layers):
        raise ValueError(f"this model has {len(layers)} style layers, got {len(styles)} style vectors")
    for layer, s in zip(layers, styles):
        if s.ndim != 2 or s.shape[1] != layer.channels or s.shape[0] != styles[0].shape[0]:
            raise ValueError(f"style layer {layer.index} ({layer.name}) needs [N, {layer.channels}], "
                             f"got {list(s.shape)}")
    return layers


def synthesize_from_styles(G: torch.nn.Module, styles: Sequence[torch.Tensor], ws: Optional[torch.Tensor] = None,
                           **synthesis_kwargs: object) -> torch.Tensor:
    """Render images from S codes with G's own synthesis network; `ws` feeds whatever is not in S
    (StyleGAN3's input transform; StyleGAN2 needs none). Rendering the S of a W+ code gives exactly
    the image of that W+ code."""
    layers = _check_styles(G, styles)
    n = styles[0].shape[0]
    if ws is None:
        if G.architecture == "stylegan3":
            raise ValueError("StyleGAN3 needs the W+ code too: its input transform is not part of S")
        ws = torch.zeros([n, G.num_ws, G.w_dim], device=styles[0].device)
    swapped = replace_submodules(G.synthesis, {f"{l.name}.affine": GivenStyles(s) for l, s in zip(layers, styles)})
    return swapped(ws, **synthesis_kwargs)


def styles_to_numpy(styles: Sequence[torch.Tensor]) -> dict[str, np.ndarray]:
    """{'s00': ..., 's01': ...} float32 arrays, one per style layer."""
    return {f"s{i:02d}": s.detach().cpu().numpy().astype(np.float32) for i, s in enumerate(styles)}


def save_styles(path: Union[str, Path], ws: torch.Tensor, styles: Sequence[torch.Tensor]) -> Path:
    """Write an S code as .npz: 'w' (the W+ code it came from, readable by load_latents) and s00, s01, ..."""
    path = Path(path)
    arrays = {"w": ws.detach().cpu().numpy().astype(np.float32), **styles_to_numpy(styles)}
    np.savez(path, **arrays)
    return path


def load_styles(path: Union[str, Path], device: Union[str, torch.device] = "cpu") -> Optional[list[torch.Tensor]]:
    """The S vectors saved by save_styles, or None when the file holds only a W+ code."""
    with np.load(path, allow_pickle=False) as data:
        names = sorted(n for n in data.files if len(n) == 3 and n[0] == "s" and n[1:].isdigit())
        if not names:
            return None
        if names != [f"s{i:02d}" for i in range(len(names))]:
            raise ValueError(f"{path}: style arrays are not numbered s00, s01, ... without gaps")
        arrays = [np.asarray(data[n]) for n in names]
    for name, a in zip(names, arrays):
        if a.dtype.kind != "f" or a.ndim != 2 or not np.isfinite(a).all():
            raise ValueError(f"{path}: {name} must be a finite float array [N, channels]")
    return [torch.from_numpy(a.astype(np.float32)).to(device) for a in arrays]
