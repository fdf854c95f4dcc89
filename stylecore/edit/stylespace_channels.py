"""StyleSpace editing (Wu et al. 2021): change single S channels, and find the channels that act on a
region the user marks.

Strengths are in standard deviations of the channel over sampled codes (StyleSpace's unit), so
one slider range suits every layer. Locating channels follows the paper's gradient-map idea: a
channel belongs to a region when the image's sensitivity to it lies mostly inside the region.
Per-channel gradient maps would need one backward pass per channel; instead the squared Jacobian
energy inside and outside the region is estimated for all channels at once with random probes
(E[(gᵀ J)²] = Σ J², g ~ N(0, I)), a few backward passes in all. The exact but slower alternative,
"perturbation", renders every candidate channel pushed by a few σ and measures the pixel change.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from stylecore.codes.latents import seeds_to_ws
from stylecore.codes.stylespace import StyleLayer, style_layers, synthesize_from_styles, ws_to_styles
from stylecore.progress import Progress, report

__all__ = ["KnownChannel", "FFHQ_CHANNELS", "FFHQ_1024_LAYOUT", "known_channels_fit", "style_std",
           "edit_channel", "edit_channels", "ChannelScore", "region_mask", "locate_channels"]



@dataclass(frozen=True)
class KnownChannel:
    """A published S channel: StyleSpace's layer_channel notation (layer counts toRGB layers too)."""

    layer: int
    channel: int
    label: str
    source: str

    @property
    def code(self) -> str:
        return f"{self.layer}_{self.channel}"


# Channel widths of S for StyleGAN2 FFHQ 1024 config-f (26 layers, 9088 channels): the only
# generator the published channels below refer to.
FFHQ_1024_LAYOUT = (512,) * 15 + (256,) * 3 + (128,) * 3 + (64,) * 3 + (32,) * 2

_PAPER = "Wu, Lischinski, Shechtman, StyleSpace Analysis, CVPR 2021 (arXiv:2011.12799), Fig. 1"
_DEMO = "hyungkwonko/StyleSpace-pytorch, stylespace.py (manipulation examples)"
# Signs are not part of the published labels: try both directions of the slider.
FFHQ_CHANNELS: tuple[KnownChannel, ...] = (
    KnownChannel(6, 364, "amount of hair", _PAPER),
    KnownChannel(11, 286, "hair greyness", _PAPER),
    KnownChannel(9, 409, "gaze / eyes", _DEMO + "; the 9_409 gaze channel of the StyleSpace paper"),
    KnownChannel(6, 259, "mouth (smile)", _DEMO),
    KnownChannel(12, 330, "hair", _DEMO),
    KnownChannel(15, 45, "lipstick", _DEMO),
    KnownChannel(3, 95, "head pose (marked uncertain by its author)", _DEMO),
)


def known_channels_fit(G: torch.nn.Module) -> bool:
    """Whether G's S has the FFHQ-1024 layout the published channels index into."""
    try:
        return tuple(l.channels for l in style_layers(G)) == FFHQ_1024_LAYOUT
    except ValueError:
        return False


@torch.no_grad()
def style_std(G: torch.nn.Module, n_samples: int = 2000, seed: int = 0, truncation_psi: float = 1.0,
              class_idx: Optional[int] = None, batch_size: int = 500) -> list[torch.Tensor]:
    """Per-channel standard deviation of S over sampled codes (mapping and affines only, no rendering)."""
    device = next(G.parameters()).device
    sums: Optional[list[torch.Tensor]] = None
    squares: Optional[list[torch.Tensor]] = None
    seeds = list(range(seed, seed + int(n_samples)))
    for start in range(0, len(seeds), batch_size):
        batch = seeds[start:start + batch_size]
        ws = seeds_to_ws(G, batch, truncation_psi, class_idx=class_idx, device=device)
        styles = [s.to(torch.float64) for s in ws_to_styles(G, ws)]
        if sums is None:
            sums = [s.sum(0) for s in styles]
            squares = [s.square().sum(0) for s in styles]
        else:
            sums = [a + s.sum(0) for a, s in zip(sums, styles)]
            squares = [a + s.square().sum(0) for a, s in zip(squares, styles)]
    n = len(seeds)
    assert sums is not None and squares is not None
    return [((q - s * s / n) / max(n - 1, 1)).clamp(min=0).sqrt().to(torch.float32)
            for s, q in zip(sums, squares)]


def _check_channel(styles: Sequence[torch.Tensor], layer: int, channel: int) -> None:
    if not 0 <= int(layer) < len(styles):
        raise ValueError(f"style layer must be from 0 to {len(styles) - 1}, got {layer}")
    width = styles[int(layer)].shape[1]
    if not 0 <= int(channel) < width:
        raise ValueError(f"channel must be from 0 to {width - 1} in style layer {layer}, got {channel}")


def edit_channels(styles: Sequence[torch.Tensor], edits: Sequence[tuple[int, int, float]],
                  std: Optional[Sequence[torch.Tensor]] = None) -> list[torch.Tensor]:
    """S with each (layer, channel, strength) applied: s += strength·σ (σ = 1 without `std`).

    Returns a new list; unedited layers are the same tensors, edited ones are copies.
    """
    out = list(styles)
    for layer, channel, strength in edits:
        _check_channel(styles, layer, channel)
        layer, channel = int(layer), int(channel)
        scale = float(std[layer][channel]) if std is not None else 1.0
        edited = out[layer].clone() if out[layer] is styles[layer] else out[layer]
        edited[:, channel] += float(strength) * scale
        out[layer] = edited
    return out


def edit_channel(styles: Sequence[torch.Tensor], layer: int, channel: int, strength: float,
                 std: Optional[Sequence[torch.Tensor]] = None) -> list[torch.Tensor]:
    """S with one channel moved by `strength` standard deviations."""
    return edit_channels(styles, [(layer, channel, strength)], std)


def region_mask(mask: np.ndarray, resolution: int) -> torch.Tensor:
    """A user's mark (any size, bool/number/RGBA) -> a float {0, 1} mask [resolution, resolution]."""
    m = np.asarray(mask)
    if m.ndim == 3:  # RGBA strokes: alpha; RGB: any colour
        m = m[..., 3] if m.shape[-1] == 4 else m.max(axis=-1)
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"the region mask must be a 2-D image, got shape {list(np.shape(mask))}")
    t = torch.from_numpy((m > 0).astype(np.float32))[None, None]
    t = torch.nn.functional.interpolate(t, size=(resolution, resolution), mode="area")[0, 0]
    t = (t >= 0.5).float()
    if not 0 < float(t.sum()) < resolution * resolution:
        raise ValueError("mark a region that covers part of the image (not nothing, not everything)")
    return t


@dataclass(frozen=True)
class ChannelScore:
    """How one S channel acts on the marked region."""

    layer: int
    channel: int
    name: str  # the module, e.g. "b32.conv1"
    share: float  # fraction of the channel's effect that falls inside the region
    effect: float  # strength of its effect inside the region (per σ, relative to the strongest)
    score: float  # share × effect: the ranking

    @property
    def code(self) -> str:
        return f"{self.layer}_{self.channel}"


def _chosen_layers(G: torch.nn.Module, layers: Optional[Sequence[int]], include_torgb: bool) -> list[StyleLayer]:
    all_layers = style_layers(G)
    if layers is not None:
        bad = [i for i in layers if not 0 <= int(i) < len(all_layers)]
        if bad:
            raise ValueError(f"style layers must be from 0 to {len(all_layers) - 1}, got {bad}")
        return [all_layers[int(i)] for i in layers]
    return [l for l in all_layers if include_torgb or not l.is_torgb]


def _rank(chosen: list[StyleLayer], inside: list[torch.Tensor], outside: list[torch.Tensor],
          top: int) -> list[ChannelScore]:
    ins = torch.cat(inside)
    outs = torch.cat(outside)
    share = ins / (ins + outs).clamp(min=1e-30)
    effect = ins / ins.max().clamp(min=1e-30)
    score = share * effect
    owners = [(l, c) for l in chosen for c in range(l.channels)]
    order = torch.argsort(score, descending=True, stable=True)[:top].tolist()
    return [ChannelScore(owners[i][0].index, owners[i][1], owners[i][0].name, float(share[i]), float(effect[i]),
                         float(score[i])) for i in order]


def locate_channels(G: torch.nn.Module, ws: torch.Tensor, mask: np.ndarray, method: str = "gradient",
                    top: int = 20, layers: Optional[Sequence[int]] = None, include_torgb: bool = False,
                    std: Optional[Sequence[torch.Tensor]] = None, probes: int = 16, seed: int = 0,
                    perturbation: float = 5.0, batch_size: int = 32, progress: Progress = None,
                    **synthesis_kwargs: object) -> list[ChannelScore]:
    """The S channels that act most, and most exclusively, on the marked region of ws[0]'s image.

    method "gradient" (fast, estimated from `probes` random projections) or "perturbation" (exact:
    one render per candidate channel, pushed by `perturbation` σ).
    """
    if method not in ("gradient", "perturbation"):
        raise ValueError(f"method must be 'gradient' or 'perturbation', got {method!r}")
    synthesis_kwargs.setdefault("noise_mode", "const")
    ws = ws[:1].detach()
    chosen = _chosen_layers(G, layers, include_torgb)
    if not chosen:
        raise ValueError("no style layers to search")
    base = [s.detach() for s in ws_to_styles(G, ws)]
    sigma = [torch.ones_like(s[0]) for s in base] if std is None else [s.to(base[0].device) for s in std]
    m = region_mask(mask, G.img_resolution).to(ws.device)
    if method == "gradient":
        inside, outside = _gradient_energy(G, ws, base, chosen, sigma, m, probes, seed, progress, synthesis_kwargs)
    else:
        inside, outside = _perturbation_change(G, ws, base, chosen, sigma, m, perturbation, batch_size, progress,
                                               synthesis_kwargs)
    return _rank(chosen, inside, outside, int(top))


def _gradient_energy(G, ws, base, chosen, sigma, m, probes, seed, progress, kwargs):
    styles = [s.clone().requires_grad_(l.index in {c.index for c in chosen}) for l, s in
              zip(style_layers(G), base)]
    wanted = [styles[l.index] for l in chosen]
    with torch.enable_grad():
        img = synthesize_from_styles(G, styles, ws, **kwargs)
        gen = torch.Generator().manual_seed(int(seed))
        inside = [torch.zeros_like(w[0]) for w in wanted]
        outside = [torch.zeros_like(w[0]) for w in wanted]
        for k in range(int(probes)):
            g = torch.randn(img.shape, generator=gen).to(img.device)
            for region, acc in ((m, inside), (1 - m, outside)):
                grads = torch.autograd.grad((img * g * region).sum(), wanted, retain_graph=True)
                for a, gr in zip(acc, grads):
                    a += gr[0].square()
            report(progress, (k + 1) / probes, f"gradient probe {k + 1} of {probes}")
    scale = [sigma[l.index].square() / probes for l in chosen]
    return [a * s for a, s in zip(inside, scale)], [a * s for a, s in zip(outside, scale)]


@torch.no_grad()
def _perturbation_change(G, ws, base, chosen, sigma, m, amount, batch_size, progress, kwargs):
    reference = synthesize_from_styles(G, base, ws, **kwargs)
    todo = [(l, c) for l in chosen for c in range(l.channels)]
    inside: list[float] = []
    outside: list[float] = []
    for start in range(0, len(todo), batch_size):
        batch = todo[start:start + batch_size]
        n = len(batch)
        styles = [s.expand(n, -1).clone() for s in base]
        for row, (layer, channel) in enumerate(batch):
            styles[layer.index][row, channel] += amount * float(sigma[layer.index][channel])
        change = (synthesize_from_styles(G, styles, ws.expand(n, -1, -1), **kwargs) - reference).abs().sum(1)
        inside += (change * m).sum((1, 2)).tolist()
        outside += (change * (1 - m)).sum((1, 2)).tolist()
        report(progress, min(start + n, len(todo)) / len(todo), f"rendered {start + n} of {len(todo)} channels")
    sizes = np.cumsum([0] + [l.channels for l in chosen])
    split = lambda values: [torch.tensor(values[a:b]) for a, b in zip(sizes[:-1], sizes[1:])]  # noqa: E731
    return split(inside), split(outside)
