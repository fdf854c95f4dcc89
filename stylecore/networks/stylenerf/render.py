"""StyleNeRF's volume renderer: coarse + hierarchical foreground samples along camera rays and
NeRF++ inverse-sphere background samples, composited into a low-resolution feature image.

Evaluation-mode behaviour only (what inference needs): no interval jitter, no density noise,
deterministic inverse-CDF resampling (fixtures README-stylenerf.md, "Camera conventions").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

import torch

from stylecore.networks.stylenerf.camera import depth2pts_outside

__all__ = ["VolumeRenderer", "RenderOptions", "parse_render_option", "sample_pdf", "composite"]

TINY = 1e-10
HUGE = 1e10

# A field evaluated at points [B, N, D] -> (features [B, N, C], raw density [B, N]).
Field = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class RenderOptions:
    """What `render_option` asks for: a frozen background camera and a number of ray samples."""

    freeze_bg: bool = False
    steps: Optional[int] = None


def parse_render_option(text: Optional[str]) -> RenderOptions:
    """'freeze_bg,steps:40' -> RenderOptions; unknown options are refused with their name."""
    freeze_bg, steps = False, None
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        if item == "freeze_bg":
            freeze_bg = True
        elif item.startswith("steps:"):
            try:
                steps = int(item[len("steps:"):])
            except ValueError:
                raise ValueError(f"render option {item!r}: steps must be a whole number") from None
            if not 2 <= steps <= 512:
                raise ValueError(f"render option {item!r}: steps must be from 2 to 512")
        else:
            raise ValueError(f"render option {item!r} is not supported (known: freeze_bg, steps:N)")
    return RenderOptions(freeze_bg=freeze_bg, steps=steps)


def sample_pdf(bins: torch.Tensor, weights: torch.Tensor, n_samples: int, eps: float = 1e-5) -> torch.Tensor:
    """Deterministic inverse-CDF sampling: [R, M+1] bin edges, [R, M] weights -> [R, n_samples] depths."""
    weights = weights + eps
    pdf = weights / weights.sum(-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[:, :1]), torch.cumsum(pdf, -1)], -1)
    u = torch.linspace(0, 1, n_samples, device=bins.device, dtype=bins.dtype).expand(cdf.shape[0], n_samples)
    u = u.contiguous()
    inds = torch.searchsorted(cdf, u, right=True)
    below = (inds - 1).clamp_min(0)
    above = inds.clamp_max(cdf.shape[1] - 1)
    idx = torch.stack([below, above], -1).reshape(cdf.shape[0], -1)
    cdf_g = torch.gather(cdf, 1, idx).reshape(-1, n_samples, 2)
    bins_g = torch.gather(bins, 1, idx).reshape(-1, n_samples, 2)
    denom = cdf_g[..., 1] - cdf_g[..., 0]
    denom = torch.where(denom < eps, torch.ones_like(denom), denom)
    return bins_g[..., 0] + (u - cdf_g[..., 0]) / denom * (bins_g[..., 1] - bins_g[..., 0])


def composite(density: torch.Tensor, dists: torch.Tensor, opaque_last: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Alpha compositing along the last axis: (weights, transmittance left after the last sample).

    `opaque_last` makes the last sample fully opaque (the background's sample at infinity).
    """
    alpha = 1.0 - torch.exp(-density * dists)
    if opaque_last:
        alpha = torch.cat([alpha[..., :-1], torch.ones_like(alpha[..., -1:])], -1)
    trans = torch.cumprod(1.0 - alpha + TINY, dim=-1)
    weights = alpha * torch.cat([torch.ones_like(trans[..., :1]), trans[..., :-1]], -1)
    return weights, trans[..., -1]


class VolumeRenderer:
    """`synthesis.V`: renderer configuration (sample counts, background) and the rendering itself."""

    n_ray_samples: int = 14
    n_bg_samples: int = 4
    hierarchical: bool = True
    no_background: bool = False
    abs_sigma: bool = False
    white_background: bool = False
    sigma_type: str = "relu"

    def __init__(self, renderer_kwargs: Optional[Mapping[str, Any]] = None):
        for key, value in dict(renderer_kwargs or {}).items():
            if hasattr(type(self), key):
                setattr(self, key, value)
        if self.sigma_type != "relu" or self.white_background:
            raise ValueError("only ReLU densities without a white background are supported")

    def density(self, sigma: torch.Tensor) -> torch.Tensor:
        return sigma.abs() if self.abs_sigma else torch.relu(sigma)

    def _march(self, field: Field, origin: torch.Tensor, rays: torch.Tensor,
               depths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Evaluate the field at origin + depth * ray: features [B, R, S, C], density [B, R, S]."""
        B, R, S = depths.shape
        pts = origin.unsqueeze(2) + depths.unsqueeze(-1) * rays.unsqueeze(2)  # [B, R, S, 3]
        feat, sigma = field(pts.reshape(B, R * S, -1))
        return feat.reshape(B, R, S, -1), self.density(sigma.reshape(B, R, S))

    def foreground(self, field: Field, origin: torch.Tensor, rays: torch.Tensor, depth_range: Any,
                   n_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Foreground features [B, R, C] and remaining transmittance [B, R] along unnormalised rays."""
        B, R, _ = rays.shape
        lo, hi = float(depth_range[0]), float(depth_range[1])
        t = torch.linspace(0, 1, n_steps, device=rays.device, dtype=rays.dtype)
        depths = (lo + (hi - lo) * t).expand(B, R, n_steps)
        ray_norm = rays.norm(dim=-1, keepdim=True)
        feat, density = self._march(field, origin, rays, depths)
        if not self.hierarchical:
            weights, remaining = composite(density, self._dists(depths, ray_norm))
            return torch.einsum("brsc,brs->brc", feat, weights), remaining
        with torch.no_grad():
            weights, _ = composite(density, self._dists(depths, ray_norm))
            mids = 0.5 * (depths[..., 1:] + depths[..., :-1])
            fine = sample_pdf(mids.reshape(B * R, -1), weights[..., 1:-1].reshape(B * R, -1), n_steps)
            fine = fine.reshape(B, R, n_steps)
        feat_f, density_f = self._march(field, origin, rays, fine)
        # Composite coarse and fine samples in depth order, then sum each set with its own weights
        # (no need to reorder the large feature tensors).
        all_depths, order = torch.sort(torch.cat([depths, fine], -1), -1)
        density = torch.gather(torch.cat([density, density_f], -1), -1, order)
        weights, remaining = composite(density, self._dists(all_depths, ray_norm))
        weights = torch.empty_like(weights).scatter_(-1, order, weights)
        out = torch.einsum("brsc,brs->brc", feat, weights[..., :n_steps])
        return out + torch.einsum("brsc,brs->brc", feat_f, weights[..., n_steps:]), remaining

    def _dists(self, depths: torch.Tensor, ray_norm: torch.Tensor) -> torch.Tensor:
        """Distances between samples along the ray; the last one is 0 when a background follows."""
        last = 0.0 if not self.no_background else HUGE
        dists = torch.cat([depths[..., 1:] - depths[..., :-1], torch.full_like(depths[..., :1], last)], -1)
        return dists * ray_norm

    def background(self, field: Field, origin: torch.Tensor, rays: torch.Tensor, bg_start: float) -> torch.Tensor:
        """Background features [B, R, C]: NeRF++ samples outside the unit sphere, near to far."""
        B, R, _ = rays.shape
        n = int(self.n_bg_samples)
        inv_depth = -torch.linspace(-1, 0, n, device=rays.device, dtype=rays.dtype) * float(bg_start)
        dirs = rays / rays.norm(dim=-1, keepdim=True)
        pts = depth2pts_outside(origin.unsqueeze(2), dirs.unsqueeze(2), inv_depth.expand(B, R, n))  # [B, R, n, 4]
        feat, sigma = field(pts.reshape(B, R * n, -1))
        feat, density = feat.reshape(B, R, n, -1), self.density(sigma.reshape(B, R, n))
        dists = torch.cat([inv_depth[:-1] - inv_depth[1:], inv_depth.new_full([1], HUGE)])
        weights, _ = composite(density, dists, opaque_last=True)
        return torch.einsum("brsc,brs->brc", feat, weights)
