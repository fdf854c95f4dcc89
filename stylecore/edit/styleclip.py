"""StyleCLIP text edits (Patashnik et al. 2021) on any StyleGAN2: the three methods in one place.

- global directions (styleclip_global): text -> StyleSpace direction via a channel relevance table;
- latent optimisation (styleclip_optimize): CLIP loss + L2 on a W+ code;
- latent mappers (styleclip_mapper): released per-prompt mappers.

S codes come from stylecore.codes.stylespace (the issue names latents.py; S lives in stylespace.py, beside
the other StyleSpace code). This module adds the one-call global edit the tab and benchmark use.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from stylecore.perception.clip import ClipModel
from stylecore.edit.styleclip_global import (FS3_FILE, FS3_REPO, FS3_REVISION, RELEASED_CLIP, RELEASED_FOR, Cancelled,
                                             ChannelRelevance, StyleStats, apply_style_direction, auto_beta,
                                             cached_relevance, compute_relevance, prompt_templates, released_relevance,
                                             relevant_layers, select_channels, style_direction, style_stats,
                                             text_direction)
from stylecore.edit.styleclip_mapper import LatentMapper, apply_mapper, load_mapper, mapper_source
from stylecore.edit.styleclip_optimize import (OptimizeConfig, OptimizeResult, clip_loss, learning_rate,
                                               optimize_latent)
from stylecore.codes.stylespace import synthesize_from_styles, ws_to_styles

__all__ = ["GlobalEdit", "global_direction", "global_edit", "alpha_strip",
           "FS3_FILE", "FS3_REPO", "FS3_REVISION", "RELEASED_CLIP", "RELEASED_FOR",
           "Cancelled", "ChannelRelevance", "StyleStats", "apply_style_direction", "auto_beta", "cached_relevance",
           "compute_relevance", "prompt_templates", "released_relevance", "relevant_layers", "select_channels",
           "style_direction", "style_stats", "text_direction",
           "LatentMapper", "apply_mapper", "load_mapper", "mapper_source",
           "OptimizeConfig", "OptimizeResult", "clip_loss", "learning_rate", "optimize_latent"]


@dataclass
class GlobalEdit:
    """A text edit as a StyleSpace direction: Δs per layer and how many channels it moves."""

    delta: list[torch.Tensor]
    channels: int
    beta: float
    relevance: np.ndarray


def global_direction(G: torch.nn.Module, clip: ClipModel, table: ChannelRelevance, target: str, neutral: str,
                     beta: Optional[float] = None, templates: Optional[Sequence[str]] = None) -> GlobalEdit:
    """Text pair -> Δs (β None picks it as StyleCLIP's GUI does). Independent of the code edited."""
    r = table.relevance(text_direction(clip, target, neutral, templates))
    beta = auto_beta(r) if beta is None else float(beta)
    weights, count = select_channels(r, beta)
    if count == 0:
        raise ValueError(f"no channel reaches the disentanglement threshold β = {beta:g} "
                         f"(largest relevance {float(np.abs(r).max()):.3f}): lower β")
    return GlobalEdit(style_direction(table, weights, G), count, beta, r)


@torch.no_grad()
def global_edit(G: torch.nn.Module, ws: torch.Tensor, edit: GlobalEdit, alpha: float,
                **synthesis_kwargs: object) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Apply s' = s + α·Δs to the S code of `ws`; returns (edited S, image)."""
    synthesis_kwargs.setdefault("noise_mode", "const")
    styles = apply_style_direction(ws_to_styles(G, ws), edit.delta, alpha)
    return styles, synthesize_from_styles(G, styles, ws, **synthesis_kwargs)


@torch.no_grad()
def alpha_strip(G: torch.nn.Module, ws: torch.Tensor, edit: GlobalEdit, alphas: Sequence[float],
                **synthesis_kwargs: object) -> torch.Tensor:
    """Images of ws[0] at each α, one batch: [len(alphas), C, H, W]."""
    synthesis_kwargs.setdefault("noise_mode", "const")
    base = ws_to_styles(G, ws[:1])
    a = torch.tensor([float(x) for x in alphas], device=base[0].device)[:, None]
    styles = [s + a * d.to(s.device)[None] for s, d in zip(base, edit.delta)]
    return synthesize_from_styles(G, styles, ws[:1].expand(len(alphas), -1, -1), **synthesis_kwargs)
