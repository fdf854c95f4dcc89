"""One call for the four semantic edits of a code: InterFaceGAN directions, GANSpace components,
StyleSpace channels and local (part) edits.

A request (`EditSpec`) says which edit and how strong; `apply` takes it with the table the edit needs
(loaded directions, PCA, S standard deviations or part model: see stylecore.edit.resources for where
the app keeps them) and returns an EditResult, so every caller gets the same images, code and summary.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence, Union

import numpy as np
import torch

from stylecore.codes.stylespace import style_layers, synthesize_from_styles, ws_to_styles
from stylecore.edit.ganspace import PCA, apply_component
from stylecore.edit.interfacegan import apply_direction, parse_layers, project_out
from stylecore.edit.local_edit import (PartModel, part_channel_counts, part_map, part_threshold, render_confined,
                                      transfer_part)
from stylecore.edit.result import EditResult, first_image
from stylecore.edit.stylespace_channels import edit_channel

__all__ = ["InterFaceGANEdit", "GANSpaceEdit", "StyleSpaceEdit", "PartEdit", "EditSpec", "Directions", "EditTable",
           "apply"]


@dataclass(frozen=True)
class InterFaceGANEdit:
    """Move W+ along a linear direction: a listed one (`direction_asset`, an id of
    stylecore.engine.assets) or a file (`direction_file`); the `keep_*` attributes stay unchanged."""

    strength: float
    layers: str = "all"  # W+ rows; 'all' edits in W
    direction_asset: str = ""
    direction_file: str = ""
    keep_assets: tuple[str, ...] = ()
    keep_files: tuple[str, ...] = ()


@dataclass(frozen=True)
class GANSpaceEdit:
    """Move W+ by `strength` standard deviations along a principal component of W (PCA settings included)."""

    component: int
    strength: float
    layers: str = "all"
    samples: int = 20_000
    components: int = 32
    seed: int = 0


@dataclass(frozen=True)
class StyleSpaceEdit:
    """Move one S channel (StyleSpace's layer_channel) by `strength` standard deviations."""

    layer: int
    channel: int
    strength: float


@dataclass(frozen=True)
class PartEdit:
    """Give the code the `reference` code's version of one part (k-means parts of a feature block).

    The channels moved are those at least `selectivity` as concentrated in the part as its most
    concentrated channel (local_edit.part_threshold): relative, so the default moves something on
    every network and for any number of parts, where a fixed share could pick no channel at all."""

    part: int
    reference: torch.Tensor  # W+ [1, num_ws, w_dim]
    strength: float = 1.0
    selectivity: float = 0.5
    confine: bool = True
    block: str = ""  # empty: the default block
    k: int = 8
    samples: int = 64


EditSpec = Union[InterFaceGANEdit, GANSpaceEdit, StyleSpaceEdit, PartEdit]


@dataclass(frozen=True)
class Directions:
    """An InterFaceGAN edit's loaded direction, its name, and the directions of attributes to keep."""

    primary: np.ndarray
    name: str
    keep: tuple[np.ndarray, ...] = ()


EditTable = Union[Directions, PCA, Sequence[torch.Tensor], PartModel]


@torch.no_grad()
def apply(G: torch.nn.Module, ws: torch.Tensor, spec: EditSpec, table: EditTable,
          **synthesis_kwargs: object) -> EditResult:
    """Edit the W+ code `ws` [1, num_ws, w_dim] as `spec` says, with its table (Directions for
    InterFaceGAN, the PCA for GANSpace, S standard deviations for StyleSpace, the part model for parts)."""
    synthesis_kwargs.setdefault("noise_mode", "const")
    technique = _TECHNIQUES.get(type(spec))
    if technique is None:
        raise ValueError(f"unknown edit {type(spec).__name__}")
    before = first_image(G.synthesis(ws, **synthesis_kwargs))
    return technique(G, ws, before, spec, table, synthesis_kwargs)


def _layers_text(layers: str) -> str:
    """W+ rows as a summary names them: 'all layers' or 'layers 0-3'."""
    return "all layers" if str(layers or "all").strip().lower() == "all" else f"layers {layers}"


def _in_w(G: torch.nn.Module, method: str, summary: str, before: np.ndarray, new_ws: torch.Tensor,
          kwargs: dict) -> EditResult:
    return EditResult(method, summary, before, first_image(G.synthesis(new_ws, **kwargs)), new_ws)


def _interfacegan(G, ws, before, spec: InterFaceGANEdit, table: Directions, kwargs) -> EditResult:
    direction = project_out(table.primary, list(table.keep)) if table.keep else table.primary
    new_ws = apply_direction(ws, direction, spec.strength, parse_layers(spec.layers, G.num_ws))
    summary = f"InterFaceGAN {table.name}, amount {spec.strength:g}, on {_layers_text(spec.layers)}"
    if table.keep:
        summary += f", keeping {len(table.keep)} other attribute(s) unchanged"
    return _in_w(G, "InterFaceGAN", summary, before, new_ws, kwargs)


def _ganspace(G, ws, before, spec: GANSpaceEdit, pca: PCA, kwargs) -> EditResult:
    new_ws = apply_component(ws, pca, spec.component, spec.strength, parse_layers(spec.layers, G.num_ws))
    summary = (f"GANSpace direction {spec.component} ({pca.explained[spec.component] * 100:.2f}% of the variance), "
               f"amount {spec.strength:g}, on {_layers_text(spec.layers)}")
    return _in_w(G, "GANSpace", summary, before, new_ws, kwargs)


def _stylespace(G, ws, before, spec: StyleSpaceEdit, std: Sequence[torch.Tensor], kwargs) -> EditResult:
    styles = edit_channel(ws_to_styles(G, ws), spec.layer, spec.channel, spec.strength, std)
    summary = (f"StyleSpace channel {spec.layer}_{spec.channel} ({style_layers(G)[spec.layer].name}), "
               f"amount {spec.strength:g}")
    after = first_image(synthesize_from_styles(G, styles, ws, **kwargs))
    return EditResult("StyleSpace", summary, before, after, ws, styles)


def _part(G, ws, before, spec: PartEdit, parts: PartModel, kwargs) -> EditResult:
    target = ws_to_styles(G, ws)
    threshold = part_threshold(parts, spec.part, spec.selectivity)
    styles = transfer_part(target, ws_to_styles(G, spec.reference), parts, spec.part, spec.strength, threshold)
    summary = (f"part {spec.part} from the reference: {part_channel_counts(parts, spec.part, threshold)} style "
               f"channels (those with at least {threshold:.0%} of their energy in the part)")
    if spec.confine:
        mask = part_map(G, ws, parts, **kwargs)[0] == spec.part
        if not mask.any():
            raise ValueError(f"part {spec.part} does not appear in this image: pick another part (see the part map)")
        after = render_confined(G, target, styles, mask, **kwargs)
        summary += ", confined to the part"
    else:
        after = synthesize_from_styles(G, styles, ws, **kwargs)
    return EditResult("Local (parts)", summary, before, first_image(after), ws, styles)


_TECHNIQUES: dict[type, Callable[..., EditResult]] = {
    InterFaceGANEdit: _interfacegan, GANSpaceEdit: _ganspace, StyleSpaceEdit: _stylespace, PartEdit: _part,
}
