"""Retrieve in Style (Chong et al. 2021): part-aware retrieval in a gallery of generated images.

To find the images whose eyes (or nose, hair, ...) look like the query's, compare only the style
channels that paint that part: each S channel is weighted by its share of the part (the
contributions Editing in Style computes, stylecore.edit.local_edit.PartModel), and differences are
measured in units of the channel's spread over the gallery, so channels of every layer count alike.
A painted region stands for the parts it covers, each in proportion to its share of the region.

The gallery is N seeded images of a model with their W+ codes and S codes (seeds first_seed ..
first_seed + N - 1, so it is the same on every run and machine); the tab keeps one per model and
size in the model manager.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from stylecore.codes.generate import to_uint8
from stylecore.codes.latents import seeds_to_ws
from stylecore.codes.stylespace import ws_to_styles
from stylecore.edit.local_edit import PartModel
from stylecore.progress import Cancelled, Progress, ShouldStop, report, stop_requested

__all__ = ["Gallery", "Match", "build_gallery", "part_weights", "region_shares", "share_weights", "distances",
           "rank", "MAX_GALLERY"]

MAX_GALLERY = 2000
BATCH = 8


@dataclass(frozen=True)
class Gallery:
    """Seeded images of one model, with the codes they were made from."""

    seeds: list[int]
    ws: torch.Tensor  # [N, num_ws, w_dim], CPU
    styles: list[torch.Tensor]  # S: per style layer [N, channels], CPU
    images: np.ndarray  # [N, H, W, 3] uint8
    truncation_psi: float

    def __len__(self) -> int:
        return len(self.seeds)

    def spread(self) -> list[torch.Tensor]:
        """Each channel's standard deviation over the gallery (1 where it does not vary)."""
        return [torch.where(s.std(0) > 1e-8, s.std(0), torch.ones(())) if len(self) > 1 else torch.ones(s.shape[1])
                for s in self.styles]


@dataclass(frozen=True)
class Match:
    index: int  # in the gallery
    seed: int
    distance: float


def build_gallery(G: torch.nn.Module, size: int, first_seed: int = 0, truncation_psi: float = 0.7,
                  force_fp32: bool = True, progress: Progress = None, should_stop: ShouldStop = None) -> Gallery:
    """`size` images from seeds first_seed, first_seed + 1, ... with their W+ and S codes."""
    if not 1 <= int(size) <= MAX_GALLERY:
        raise ValueError(f"the gallery size must be from 1 to {MAX_GALLERY}, got {size}")
    device = next(G.parameters()).device
    seeds = list(range(int(first_seed), int(first_seed) + int(size)))
    ws_parts, style_parts, images = [], [], []
    with torch.no_grad():
        for start in range(0, len(seeds), BATCH):
            if stop_requested(should_stop):
                raise Cancelled("the gallery was stopped")
            ws = seeds_to_ws(G, seeds[start:start + BATCH], truncation_psi, device=device)
            ws_parts.append(ws.cpu())
            style_parts.append([s.cpu() for s in ws_to_styles(G, ws)])
            images.append(to_uint8(G.synthesis(ws, noise_mode="const", force_fp32=force_fp32)))
            done = min(start + BATCH, len(seeds))
            report(progress, done / len(seeds), f"gallery: {done} of {len(seeds)} images")
    styles = [torch.cat(layer) for layer in zip(*style_parts)]
    return Gallery(seeds, torch.cat(ws_parts), styles, np.concatenate(images), float(truncation_psi))


def part_weights(parts: PartModel, chosen: Sequence[int]) -> list[np.ndarray]:
    """Per style layer, each channel's share of the chosen parts together: [channels] each."""
    chosen = [int(p) for p in chosen]
    if not chosen:
        raise ValueError("choose at least one part")
    for part in chosen:
        if not 0 <= part < parts.k:
            raise ValueError(f"part must be from 0 to {parts.k - 1}, got {part}")
    return [np.asarray(c)[chosen].sum(0).astype(np.float32) for c in parts.contributions]


def share_weights(parts: PartModel, shares: np.ndarray) -> list[np.ndarray]:
    """Per style layer, each channel's contribution to the parts, each part weighted by `shares` [k] (a painted
    region's channel weights: each part counts by its share of the region)."""
    return [(shares[:, None] * np.asarray(c)).sum(0).astype(np.float32) for c in parts.contributions]


def region_shares(parts: PartModel, labels: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Each part's share of a painted region [k]: its pixels in the query's part map `labels` [H, W]
    under the mask `region` [H, W]."""
    labels, region = np.asarray(labels), np.asarray(region, dtype=bool)
    if labels.shape != region.shape:
        raise ValueError(f"the painted region is {region.shape[1]}x{region.shape[0]} px but the image is "
                         f"{labels.shape[1]}x{labels.shape[0]} px")
    covered = labels[region]
    if covered.size == 0:
        raise ValueError("paint a region over the part to search for (the mask is empty)")
    return np.bincount(covered.ravel(), minlength=parts.k)[:parts.k] / covered.size


def distances(gallery: Gallery, query: Sequence[torch.Tensor], weights: Sequence[np.ndarray]) -> np.ndarray:
    """The query's distance to every gallery image over the weighted channels: [N]."""
    if len(query) != len(gallery.styles) or len(weights) != len(gallery.styles):
        raise ValueError("the query, the part model and the gallery come from different generators")
    total = torch.zeros(len(gallery), dtype=torch.float64)
    weight_sum = 0.0
    for s, q, w, spread in zip(gallery.styles, query, weights, gallery.spread()):
        w_t = torch.as_tensor(w, dtype=torch.float64)
        diff = (q.detach().cpu().reshape(1, -1).double() - s.double()) / spread.double()
        total += (diff.square() * w_t).sum(1)
        weight_sum += float(w_t.sum())
    return (total / max(weight_sum, 1e-12)).sqrt().numpy()


def rank(gallery: Gallery, query: Sequence[torch.Tensor], weights: Sequence[np.ndarray], top: int = 8,
         exclude: Optional[int] = None) -> list[Match]:
    """The `top` nearest gallery images (ties by gallery order), optionally leaving one index out."""
    d = distances(gallery, query, weights)
    order = [int(i) for i in np.argsort(d, kind="stable") if i != exclude]
    return [Match(i, gallery.seeds[i], float(d[i])) for i in order[:max(1, int(top))]]
