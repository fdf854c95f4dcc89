"""StyleCLIP text edits (Patashnik et al. 2021) on any StyleGAN2: the three methods in one place.

- global directions (styleclip_global): text -> StyleSpace direction via a channel relevance table;
- latent optimisation (styleclip_optimize): CLIP loss + L2 on a W+ code;
- latent mappers (styleclip_mapper): released per-prompt mappers.

S codes come from stylecore.codes.stylespace (the issue names latents.py; S lives in stylespace.py, beside
the other StyleSpace code). This module adds the one-call global edit the benchmark uses, and
`edit_by_text`: any of the three methods as one request in, one EditResult out.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

from stylecore.perception.clip import ClipModel
from stylecore.perception.identity import identity_embedding
from stylecore.edit.result import EditResult, first_image, strip_of
from stylecore.edit.styleclip_global import (FS3_NPY, RELEASED_CLIP, RELEASED_FOR,
                                             ChannelRelevance, StyleStats, apply_style_direction, auto_beta,
                                             cached_relevance, compute_relevance, prompt_templates, released_relevance,
                                             relevant_layers, select_channels, style_direction, style_stats,
                                             text_direction)
from stylecore.edit.styleclip_mapper import LatentMapper, apply_mapper, load_mapper, mapper_source
from stylecore.edit.styleclip_optimize import (OptimizeConfig, OptimizeResult, clip_loss, learning_rate,
                                               optimize_latent)
from stylecore.codes.stylespace import synthesize_from_styles, ws_to_styles
from stylecore.codes.schedule import schedule_named
from stylecore.progress import Progress, ShouldStop

__all__ = ["GlobalEdit", "global_direction", "global_edit", "alpha_strip",
           "GlobalDirectionRequest", "OptimizationRequest", "MapperRequest", "StyleClipRequest", "edit_by_text",
           "FS3_NPY", "RELEASED_CLIP", "RELEASED_FOR",
           "ChannelRelevance", "StyleStats", "apply_style_direction", "auto_beta", "cached_relevance",
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


@dataclass(frozen=True)
class GlobalDirectionRequest:
    """A global-direction edit: from `neutral` towards `target` with strength α; β None chooses itself."""

    target: str
    neutral: str = "a face"
    alpha: float = 4.0
    beta: Optional[float] = 0.15
    relevance_images: int = 16  # images per channel when the relevance table has to be computed
    strip: tuple[float, ...] = ()  # α values for a strip of images
    clip_model: str = ""  # empty: $STYLECORE_CLIP or the default


@dataclass(frozen=True)
class OptimizationRequest:
    """Latent optimisation towards `target`; an identity loss when config.id_lambda > 0; `schedule`:
    'coarse-to-fine', 'full' or 'auto' (coarse-to-fine on a CPU, full on a GPU)."""

    target: str
    config: OptimizeConfig = OptimizeConfig(id_lambda=0.0)
    identity_weights: str = ""  # face-recognition weights; empty: $STYLECORE_ID_WEIGHTS or the Hub card
    clip_model: str = ""
    schedule: str = "auto"


@dataclass(frozen=True)
class MapperRequest:
    """A released latent mapper (a .pt path or hf://owner/repo/file.pt) applied with `strength`."""

    mapper: str
    strength: float = 1.0
    strip: tuple[float, ...] = ()  # strengths for a strip of images


StyleClipRequest = Union[GlobalDirectionRequest, OptimizationRequest, MapperRequest]


@torch.no_grad()
def edit_by_text(G: torch.nn.Module, ws: torch.Tensor, request: StyleClipRequest, *, clip: Optional[ClipModel] = None,
                 table: Optional[ChannelRelevance] = None, mapper: Optional[LatentMapper] = None,
                 identity: Optional[torch.nn.Module] = None, progress: Progress = None,
                 should_stop: ShouldStop = None, **synthesis_kwargs: object) -> EditResult:
    """Edit `ws` [1, num_ws, w_dim] as `request` says, with what that method needs: CLIP and the relevance
    table (global direction), CLIP and optionally an identity network (optimisation), the mapper."""
    synthesis_kwargs.setdefault("noise_mode", "const")
    before = first_image(G.synthesis(ws, **synthesis_kwargs))
    started = time.perf_counter()
    if isinstance(request, GlobalDirectionRequest):
        edit = global_direction(G, clip, table, request.target, request.neutral, request.beta)
        styles, after = global_edit(G, ws, edit, request.alpha, **synthesis_kwargs)
        summary = (f"Global direction '{request.target.strip()[:80]}' from '{request.neutral.strip()[:80]}': "
                   f"α {request.alpha:g}, β {edit.beta:g}, **{edit.channels} channels moved** ({table.source})")
        strip = strip_of(alpha_strip(G, ws, edit, request.strip, **synthesis_kwargs), request.strip) \
            if request.strip else []
        return EditResult("Global direction", summary, before, first_image(after), ws, styles, strip,
                          time.perf_counter() - started)
    if isinstance(request, OptimizationRequest):
        embed = None if identity is None else (lambda images: identity_embedding(identity, images))
        schedule = schedule_named(request.schedule, ws.device)
        result = optimize_latent(G, clip, ws, request.target, request.config, identity=embed, progress=progress,
                                 should_stop=should_stop, schedule=schedule, **synthesis_kwargs)
        id_note = f"identity loss λ {request.config.id_lambda:g}" if embed is not None else "identity loss off"
        summary = (f"Latent optimization towards '{request.target.strip()[:80]}': {request.config.steps} steps, "
                   f"CLIP loss {result.clip_losses[0]:.4f} → {result.clip_losses[-1]:.4f} ({id_note})"
                   + (f"; {result.note}" if result.note else ""))
        after = first_image(G.synthesis(result.ws, **synthesis_kwargs))
        return EditResult("Latent optimization", summary, before, after, result.ws,
                          seconds=time.perf_counter() - started)
    if isinstance(request, MapperRequest):
        new_ws = apply_mapper(mapper, ws, request.strength)
        summary = f"Latent mapper '{mapper.description or Path(request.mapper).name}' × {request.strength:g}"
        after = first_image(G.synthesis(new_ws, **synthesis_kwargs))
        strip = []
        if request.strip:
            strip_ws = torch.cat([apply_mapper(mapper, ws, v) for v in request.strip])
            strip = strip_of(G.synthesis(strip_ws, **synthesis_kwargs), request.strip)
        return EditResult("Latent mapper", summary, before, after, new_ws, strip=strip,
                          seconds=time.perf_counter() - started)
    raise ValueError(f"unknown StyleCLIP request {type(request).__name__}")
