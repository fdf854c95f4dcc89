"""The networks and tables edits need, kept by the model manager: every one is built once per key
through `ModelManager.resource`, counted under its memory budget and evicted least recently used,
so nothing here holds a cache of its own.

Keys (each a tuple naming its kind first; `model` is the model's cache key, see
stylecore.engine.assets.model_cache_key):
  ("style_std", model)                          S standard deviations (StyleSpace strengths)
  ("pca", model, samples, components, seed)     GANSpace's PCA of W
  ("parts", model, block, k, samples)           k-means parts and channel shares (local edits)
  ("clip", clip id, device)                     a CLIP model
  ("relevance", model, clip id, images)         StyleCLIP's channel relevance table
  ("identity", weights file, mtime, size, device)   the ArcFace network of the identity loss
  ("mapper", mapper file, mtime, size, device)  a StyleCLIP latent mapper
  ("gallery", model, size, psi)                 Retrieve in Style's seeded gallery with its W+ and S codes

Domain generators (StyleGAN-NADA) are generators: the manager loads them like any model.

`edit`, `edit_by_text`, `load_domains` and `retrieve` fetch what a request needs (and run it): the one
call a tab makes.
"""
from __future__ import annotations

import os
from pathlib import Path
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, TypeVar, Union

import numpy as np
import torch

from stylecore.edit import styleclip as sc
from stylecore.edit.edits import (Directions, EditSpec, EditTable, GANSpaceEdit, InterFaceGANEdit, PartEdit,
                                  StyleSpaceEdit, apply)
from stylecore.edit.ganspace import PCA, cached_pca
from stylecore.edit.interfacegan import load_direction
from stylecore.codes.stylespace import ws_to_styles
from stylecore.edit.domains import check_same_network
from stylecore.edit.local_edit import PartModel, cached_parts, default_block, part_overview, part_view
from stylecore.edit.retrieval import (Gallery, Match, build_gallery, part_weights, rank, region_shares,
                                      share_weights)
from stylecore.edit.result import EditResult
from stylecore.edit.stylespace_channels import ChannelScore, locate_channels, style_std
from stylecore.engine import assets
from stylecore.engine.manager import LoadedModel, ModelManager
from stylecore.engine.remote import FileRole
from stylecore.perception.clip import ClipModel, load_clip, resolve_clip
from stylecore.perception.identity import IdentityNet, identity_weights_path, load_identity
from stylecore.progress import ByteProgress, Progress, ShouldStop, from_bytes, scaled

__all__ = ["BOUNDARY_ROLE", "style_std_table", "pca_table", "part_table", "region_channels", "parts_of", "directions",
           "edit", "clip_model", "relevance_table", "identity_network", "latent_mapper", "edit_by_text", "DomainModels",
           "load_domains", "part_models", "Retrieved", "retrieve"]

T = TypeVar("T")
BOUNDARY_ROLE = FileRole("InterFaceGAN boundary", "upload a direction file (.npy boundary or e4e .pt) of your own in "
                         "the Editing tab's 'Direction file' box, or edit with GANSpace or StyleSpace, which need no "
                         "download")


def _synthesis_kwargs(model: LoadedModel) -> dict:
    return {"noise_mode": "const", "force_fp32": model.force_fp32}


def _labelled(progress: Progress, label: str) -> ByteProgress:
    """A download's progress as part of `progress`, its messages prefixed with what is downloaded."""
    if progress is None:
        return None
    return from_bytes(lambda fraction, message: progress(fraction, f"{label}: {message}"))


def style_std_table(manager: ModelManager, model: LoadedModel) -> list[torch.Tensor]:
    """Per-channel standard deviation of S: the unit of StyleSpace strengths (of the shared model, as every
    table here: a session's tuned weights change its images, not the model's statistics)."""
    model = model.shared
    return manager.resource(("style_std", assets.model_cache_key(model)), lambda: style_std(model.G))


def pca_table(manager: ModelManager, model: LoadedModel, samples: int, components: int, seed: int,
              progress: Progress = None) -> PCA:
    """GANSpace's PCA of W (class 0 of a conditional model), also cached on disk."""
    model = model.shared
    key = assets.model_cache_key(model)
    return manager.resource(("pca", key, samples, components, seed), lambda: cached_pca(
        model.G, key, samples, components, seed, class_idx=0 if model.G.c_dim else None, progress=progress))


def part_table(manager: ModelManager, model: LoadedModel, block: str, k: int, samples: int,
               progress: Progress = None) -> PartModel:
    """The k-means parts of one feature block (empty: the default block), also cached on disk."""
    model = model.shared
    key = assets.model_cache_key(model)
    block = block or default_block(model.G)
    return manager.resource(("parts", key, block, k, samples), lambda: cached_parts(
        model.G, key, k=k, n_samples=samples, block=block, progress=progress, force_fp32=model.force_fp32))


def region_channels(manager: ModelManager, model: LoadedModel, ws: torch.Tensor, mask: np.ndarray, method: str,
                    top: int, layers: Optional[Sequence[int]], progress: Progress = None) -> list[ChannelScore]:
    """The S channels acting most, and most only, on the marked region of ws[0]'s image."""
    return locate_channels(model.G, ws, mask, method=method, top=top, layers=layers,
                           std=style_std_table(manager, model), progress=progress, force_fp32=model.force_fp32)


def parts_of(manager: ModelManager, model: LoadedModel, ws: torch.Tensor, block: str, k: int, samples: int,
             progress: Progress = None) -> tuple[np.ndarray, np.ndarray]:
    """ws[0]'s image with its parts coloured over it, and each part's share of the image."""
    parts = part_table(manager, model, block, k, samples, progress)
    return part_overview(model.G, ws, parts, **_synthesis_kwargs(model))


def _listed_direction(asset_id: str, progress: Progress) -> Path:
    return assets.fetch_asset(assets.asset(asset_id), _labelled(progress, "direction"), role=BOUNDARY_ROLE)


def directions(spec: InterFaceGANEdit, progress: Progress = None) -> Directions:
    """The direction files an InterFaceGAN edit names, read (listed ones downloaded once)."""
    if spec.direction_asset:
        primary = load_direction(_listed_direction(spec.direction_asset, progress))
        name = assets.asset(spec.direction_asset).title
    elif spec.direction_file:
        primary, name = load_direction(spec.direction_file), Path(spec.direction_file).name
    else:
        raise ValueError("upload a direction file (.npy InterFaceGAN boundary or e4e .pt), or pick a listed one")
    keep = [_listed_direction(a, progress) for a in spec.keep_assets] + [Path(f) for f in spec.keep_files]
    return Directions(primary, name, tuple(load_direction(p) for p in keep))


def _table(manager: ModelManager, model: LoadedModel, spec: EditSpec, progress: Progress) -> EditTable:
    if isinstance(spec, InterFaceGANEdit):
        return directions(spec, progress)
    if isinstance(spec, GANSpaceEdit):
        return pca_table(manager, model, spec.samples, spec.components, spec.seed, progress)
    if isinstance(spec, StyleSpaceEdit):
        return style_std_table(manager, model)
    if isinstance(spec, PartEdit):
        return part_table(manager, model, spec.block, spec.k, spec.samples, progress)
    raise ValueError(f"unknown edit {type(spec).__name__}")


def edit(manager: ModelManager, model: LoadedModel, ws: torch.Tensor, spec: EditSpec,
         progress: Progress = None) -> EditResult:
    """Run one semantic edit on `ws` with the table it needs from the manager."""
    return apply(model.G, ws, spec, _table(manager, model, spec, progress), **_synthesis_kwargs(model))


def clip_model(manager: ModelManager, name: Optional[str], device: Union[str, torch.device],
               progress: Progress = None) -> ClipModel:
    """The CLIP model `name` (empty: $STYLECORE_CLIP or the default) on `device`."""
    clip_id = resolve_clip(name or None).id
    return manager.resource(("clip", clip_id, str(torch.device(device))),
                            lambda: load_clip(clip_id, device, progress=_labelled(progress, "CLIP")))


def relevance_table(manager: ModelManager, model: LoadedModel, clip: ClipModel, images: int,
                    progress: Progress = None, should_stop: ShouldStop = None) -> sc.ChannelRelevance:
    """StyleCLIP's channel relevance table: the released one where it fits, else computed (resumable)."""
    model = model.shared
    key = assets.model_cache_key(model)

    def build() -> sc.ChannelRelevance:
        released = sc.released_relevance(model.G, model.card.id, key, clip.name, _labelled(progress, "relevance"))
        return released or sc.cached_relevance(model.G, key, clip, n_images=images, progress=progress,
                                                should_stop=should_stop, force_fp32=model.force_fp32)

    return manager.resource(("relevance", key, clip.name, images), build)


def _file_resource(manager: ModelManager, kind: str, path: Path, device: torch.device,
                   load: Callable[[Path, torch.device], T]) -> T:
    """A network read from a file, kept per file version (a replaced file is read again)."""
    try:
        stat = os.stat(path)
    except OSError:
        return load(path, device)  # raises the loader's error naming the file
    key = (kind, os.path.realpath(path), stat.st_mtime_ns, stat.st_size, str(device))
    return manager.resource(key, lambda: load(path, device))


def identity_network(manager: ModelManager, weights: str, device: torch.device,
                     progress: Progress = None) -> IdentityNet:
    """The ArcFace network of the identity loss: `weights`, else $STYLECORE_ID_WEIGHTS, else the Hub card."""
    path = identity_weights_path(weights, progress=_labelled(progress, "identity network"))
    return _file_resource(manager, "identity", path, device, load_identity)


def latent_mapper(manager: ModelManager, source: str, device: torch.device,
                  progress: Progress = None) -> sc.LatentMapper:
    """A StyleCLIP mapper from a path or hf://owner/repo/file.pt."""
    path = sc.mapper_source(source, progress=_labelled(progress, "mapper"))
    return _file_resource(manager, "mapper", path, device, sc.load_mapper)


def edit_by_text(manager: ModelManager, model: LoadedModel, ws: torch.Tensor, request: sc.StyleClipRequest,
                 progress: Progress = None, should_stop: ShouldStop = None) -> EditResult:
    """Run one StyleCLIP edit on `ws` with the networks and table it needs from the manager."""
    needs: dict = {}
    if isinstance(request, sc.OptimizationRequest) and request.config.id_lambda > 0:
        needs["identity"] = identity_network(manager, request.identity_weights, model.device, progress)
    if isinstance(request, (sc.GlobalDirectionRequest, sc.OptimizationRequest)):
        needs["clip"] = clip_model(manager, request.clip_model, model.device, progress)
    if isinstance(request, sc.GlobalDirectionRequest):
        needs["table"] = relevance_table(manager, model, needs["clip"], request.relevance_images, progress,
                                         should_stop)
    if isinstance(request, sc.MapperRequest):
        needs["mapper"] = latent_mapper(manager, request.mapper, model.device, progress)
    result = sc.edit_by_text(model.G, ws, request, progress=progress, should_stop=should_stop, **needs,
                             **_synthesis_kwargs(model))
    if isinstance(request, sc.MapperRequest) and model.card.id not in sc.RELEASED_FOR:
        result.summary += " (released mappers were trained for StyleGAN2 FFHQ 1024 config-f)"
    return result


@dataclass(frozen=True)
class DomainModels:
    """A generator and the domain generators chosen for one request."""

    base: LoadedModel
    domains: list[LoadedModel]


def load_domains(manager: ModelManager, base_id: str, domain_ids: Sequence[str],
                 progress: Progress = None) -> DomainModels:
    """The generator `base_id` and its domains `domain_ids` (each checked to be one of its domains and
    the same network), loaded (downloaded once) by the manager."""
    listed = {card.id for card in manager.zoo.domains_of(base_id)}
    if not listed:
        bases = ", ".join(manager.zoo.domain_bases())
        raise ValueError(f"{base_id!r} has no domain generators; choose one of: {bases}")
    unknown = [d for d in domain_ids if d not in listed]
    if unknown:
        raise ValueError(f"not a domain of {base_id!r}: {', '.join(map(str, unknown))}")
    steps = len(domain_ids) + 1
    base = manager.get(base_id, progress=scaled(progress, 0, 1 / steps))
    domains = []
    for i, domain_id in enumerate(domain_ids, start=1):
        domain = manager.get(domain_id, progress=scaled(progress, i / steps, (i + 1) / steps))
        check_same_network(base.G, domain.G, domain.card.title)
        domains.append(domain)
    return DomainModels(base, domains)


def part_models(zoo) -> list[tuple[str, str]]:
    """(title, id) of the generators part-aware tools work on: StyleGAN2, not domain copies."""
    return [(card.title, card.id) for card in zoo.cards() if card.architecture in ("stylegan2", "auto")
            and not card.base]


@dataclass(frozen=True)
class Retrieved:
    """A ranking: the gallery, the nearest images in it, the query with its parts coloured, and the parts
    compared, the most weighted first (a painted region: the parts it covers, by their share)."""

    gallery: Gallery
    matches: list[Match]
    query_overlay: np.ndarray
    parts: list[int]


def retrieve(manager: ModelManager, model: LoadedModel, ws: torch.Tensor, chosen: Sequence[int], size: int,
             truncation_psi: float, top: int, k: int, samples: int, region: Optional[np.ndarray] = None,
             progress: Progress = None) -> Retrieved:
    """Retrieve in Style: the `top` images of the model's seeded gallery nearest to ws[0] in the chosen
    parts (of the k-means part model with `k` parts learnt from `samples` images), or in the parts a
    painted `region` (a boolean mask of any size over the image) covers."""
    parts = part_table(manager, model, "", k, samples, scaled(progress, 0.0, 0.3))
    key = assets.model_cache_key(model)
    gallery = manager.resource(("gallery", key, int(size), float(truncation_psi)), lambda: build_gallery(
        model.G, size, truncation_psi=truncation_psi, force_fp32=model.force_fp32,
        progress=scaled(progress, 0.3, 0.95)))
    with torch.no_grad():
        query = [s[0] for s in ws_to_styles(model.G, ws[:1])]
        overlay, labels = part_view(model.G, ws, parts, **_synthesis_kwargs(model))
    if region is None:
        weights, compared = part_weights(parts, chosen), [int(p) for p in chosen]
    else:
        shares = region_shares(parts, labels, _resized(region, labels.shape))
        weights = share_weights(parts, shares)
        compared = [int(p) for p in np.argsort(-shares, kind="stable") if shares[p] > 0]
    return Retrieved(gallery, rank(gallery, query, weights, top), overlay, compared)


def _resized(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A boolean mask resampled (nearest) to `shape`."""
    rows = np.arange(shape[0]) * mask.shape[0] // shape[0]
    cols = np.arange(shape[1]) * mask.shape[1] // shape[1]
    return np.asarray(mask, dtype=bool)[rows][:, cols]
