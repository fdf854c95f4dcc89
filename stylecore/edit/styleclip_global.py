"""StyleCLIP global directions (Patashnik et al. 2021, method 3): a text edit becomes a direction in
StyleSpace through a per-channel relevance table computed once per generator.

Text: target and neutral prompts are each encoded through CLIP's ImageNet prompt templates and
averaged, and their normalised difference Δt is the edit in CLIP space. Channels: the table holds,
for every manipulable S channel, the unit CLIP-space direction in which pushing that channel moves
images; its dot product with Δt is the channel's relevance. Channels below β are dropped
(disentanglement), the rest are scaled so the strongest is ±1, times each channel's σ, times α.

The table is our own computation for any StyleGAN2 (resumable, cached per model on disk). For the
official FFHQ-1024 config-f network the released `fs3.npy` is used instead: same layer coverage
(non-toRGB layers up to 128 px), same definition.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from stylecore.perception.clip import ClipModel, clean_prompt
from stylecore.engine.assets import atomic_write, editing_cache_dir, fetch_asset
from stylecore.engine.zoo import builtin_file
from stylecore.codes.latents import seeds_to_ws
from stylecore.codes.stylespace import StyleLayer, style_layers, synthesize_from_styles, ws_to_styles
from stylecore.progress import ByteProgress, Cancelled, Progress, ShouldStop, report, stop_requested

__all__ = ["prompt_templates", "text_direction", "StyleStats", "style_stats", "ChannelRelevance",
           "relevant_layers", "select_channels", "auto_beta", "style_direction", "apply_style_direction",
           "compute_relevance", "cached_relevance", "released_relevance", "RELEASED_FOR", "RELEASED_CLIP",
           "FS3_NPY"]

FS3_NPY = builtin_file("styleclip-fs3")  # StyleCLIP's released channel relevance table
# Model cards of the network fs3.npy was computed for (official StyleGAN2 FFHQ 1024 config-f).
RELEASED_FOR = frozenset({"sg2-ffhq-1024-tf", "sg2-ffhq-1024-tf-hub", "sg2-ffhq-1024-rosinality"})
# The CLIP fs3.npy was computed with (OpenAI ViT-B/32), under the ids stylecore.perception.clip knows it by.
RELEASED_CLIP = frozenset({"openai-vit-b-32", "hf-hub:timm/vit_base_patch32_clip_224.openai"})
RELEASED_LAYOUT = (512,) * 15 + (256,) * 3 + (128,) * 3 + (64,) * 3 + (32,) * 2


def prompt_templates() -> tuple[str, ...]:
    """CLIP's 80 ImageNet prompt templates less 'a photo of many {}.' (the 79 StyleCLIP uses)."""
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    return tuple(t for t in (f("{}") for f in OPENAI_IMAGENET_TEMPLATES) if t != "a photo of many {}.")


def _prompt_embedding(clip: ClipModel, prompt: str, templates: Sequence[str]) -> torch.Tensor:
    feats = clip.encode_text([t.format(prompt) for t in templates])
    return torch.nn.functional.normalize(feats.mean(0), dim=0)


def text_direction(clip: ClipModel, target: str, neutral: str,
                   templates: Optional[Sequence[str]] = None) -> torch.Tensor:
    """Δt: unit vector in CLIP space from the neutral to the target description (template-averaged)."""
    target, neutral = clean_prompt(target, "target text"), clean_prompt(neutral, "neutral text")
    templates = tuple(templates) if templates is not None else prompt_templates()
    delta = _prompt_embedding(clip, target, templates) - _prompt_embedding(clip, neutral, templates)
    norm = float(delta.norm())
    if norm < 1e-6:
        raise ValueError("the target and neutral texts mean the same to CLIP: describe the change in the target")
    return delta / norm


@dataclass
class StyleStats:
    """Per-channel mean and standard deviation of S over sampled codes."""

    mean: list[torch.Tensor]
    std: list[torch.Tensor]


@torch.no_grad()
def style_stats(G: torch.nn.Module, n_samples: int = 100_000, seed: int = 5, truncation_psi: float = 0.7,
                batch_size: int = 1000) -> StyleStats:
    """S mean/std as StyleCLIP computes them (ψ = 0.7, 100k samples by default): mapping and affines only."""
    device = next(G.parameters()).device
    total = s1 = s2 = None
    for start in range(0, n_samples, batch_size):
        seeds = range(seed * 10_000_000 + start, seed * 10_000_000 + min(start + batch_size, n_samples))
        ws = seeds_to_ws(G, list(seeds), truncation_psi, class_idx=0 if G.c_dim else None, device=device)  # class 0 of conditional models
        styles = [s.double() for s in ws_to_styles(G, ws)]
        a, b = [s.sum(0) for s in styles], [s.square().sum(0) for s in styles]
        s1 = a if s1 is None else [x + y for x, y in zip(s1, a)]
        s2 = b if s2 is None else [x + y for x, y in zip(s2, b)]
        total = (total or 0) + len(seeds)
    assert s1 is not None and s2 is not None and total
    mean = [s / total for s in s1]
    std = [((q / total - m * m) * total / max(total - 1, 1)).clamp(min=0).sqrt() for q, m in zip(s2, mean)]
    return StyleStats([m.float() for m in mean], [s.float() for s in std])


def relevant_layers(G: torch.nn.Module, max_resolution: int = 128) -> list[StyleLayer]:
    """The S layers global directions move: non-toRGB layers up to `max_resolution` (fs3.npy's choice)."""
    return [l for l in style_layers(G) if not l.is_torgb and l.resolution <= max_resolution]


@dataclass
class ChannelRelevance:
    """The relevance table: one unit CLIP direction per channel of `layers` (in S order), with S statistics."""

    fs: np.ndarray  # [channels, clip_dim]
    layers: tuple[int, ...]
    stats: StyleStats
    source: str

    def relevance(self, delta_t: torch.Tensor) -> np.ndarray:
        """r = fs · Δt for every channel."""
        if delta_t.shape[-1] != self.fs.shape[1]:
            raise ValueError(f"the relevance table is for a {self.fs.shape[1]}-d CLIP, the text is "
                             f"{delta_t.shape[-1]}-d: use the CLIP model the table was computed with")
        return self.fs @ delta_t.detach().cpu().numpy().astype(self.fs.dtype)


def select_channels(relevance: np.ndarray, beta: float) -> tuple[np.ndarray, int]:
    """Zero channels with |r| < β, scale so the largest is ±1; returns (weights, channels kept)."""
    r = np.asarray(relevance, dtype=np.float64)
    kept = np.abs(r) >= float(beta)
    out = np.where(kept, r, 0.0)
    peak = np.abs(out).max() if kept.any() else 0.0
    return (out / peak if peak > 0 else out), int(kept.sum())


def auto_beta(relevance: np.ndarray, min_channels: int = 20) -> float:
    """The StyleCLIP GUI's choice: the largest β in 0.10..0.29 that keeps more than `min_channels` channels."""
    r = np.abs(np.asarray(relevance))
    for beta in np.arange(0.29, 0.095, -0.01):
        if int((r >= beta).sum()) > min_channels:
            return round(float(beta), 2)
    return 0.10


def style_direction(table: ChannelRelevance, weights: np.ndarray, G: torch.nn.Module) -> list[torch.Tensor]:
    """Δs per S layer ([channels] each): the weights scattered into the table's layers, times σ; zero elsewhere."""
    layers = style_layers(G)
    device = next(G.parameters()).device
    delta = [torch.zeros(l.channels, device=device) for l in layers]
    offset = 0
    for index in table.layers:
        n = layers[index].channels
        w = torch.as_tensor(weights[offset:offset + n], dtype=torch.float32, device=device)
        delta[index] = w * table.stats.std[index].to(device)
        offset += n
    if offset != len(weights):
        raise ValueError(f"the relevance table has {len(weights)} channels, this model's layers {offset}")
    return delta


def apply_style_direction(styles: Sequence[torch.Tensor], delta: Sequence[torch.Tensor],
                          alpha: float) -> list[torch.Tensor]:
    """s' = s + α·Δs (α = 0 returns the very same S)."""
    if alpha == 0:
        return list(styles)
    return [s + float(alpha) * d.to(s.device) for s, d in zip(styles, delta)]


def _check_table(G: torch.nn.Module, fs: np.ndarray, layers: Sequence[int]) -> None:
    widths = sum(style_layers(G)[i].channels for i in layers)
    if fs.ndim != 2 or fs.shape[0] != widths:
        raise ValueError(f"relevance table of shape {list(fs.shape)} does not fit this model ({widths} channels)")


@torch.no_grad()
def compute_relevance(G: torch.nn.Module, clip: ClipModel, stats: StyleStats, n_images: int = 100,
                      layers: Optional[Sequence[int]] = None, seed: int = 0, truncation_psi: float = 0.7,
                      strength: float = 5.0, batch_size: int = 16, checkpoint: Optional[Path] = None,
                      progress: Progress = None, should_stop: ShouldStop = None,
                      **synthesis_kwargs: object) -> ChannelRelevance:
    """The relevance table for any StyleGAN2: for each channel, images rendered with it at μ ∓ 5σ,
    CLIP-encoded; the normalised mean of the normalised differences is its direction.

    Costs channels × n_images × 2 renders. With `checkpoint`, finished channels are saved there as
    work goes on, and a later call with the same settings resumes from them; `should_stop` ends the
    work early with Cancelled (after saving)."""
    synthesis_kwargs.setdefault("noise_mode", "const")
    chosen = [style_layers(G)[i] for i in layers] if layers is not None else relevant_layers(G)
    if not chosen:
        raise ValueError("no style layers to compute relevance for")
    device = next(G.parameters()).device
    ws = seeds_to_ws(G, list(range(seed, seed + n_images)), truncation_psi, class_idx=0 if G.c_dim else None,
                     device=device)
    base = ws_to_styles(G, ws)
    todo = [(l.index, c) for l in chosen for c in range(l.channels)]
    meta = json.dumps({"n": n_images, "layers": [l.index for l in chosen], "seed": seed, "psi": truncation_psi,
                       "strength": strength, "clip": clip.name, "dim": clip.embed_dim})
    fs = np.zeros((len(todo), clip.embed_dim), dtype=np.float32)
    done = 0
    if checkpoint is not None and Path(checkpoint).exists():
        with np.load(checkpoint, allow_pickle=False) as saved:
            if str(saved["meta"]) == meta:
                done = int(saved["done"])
                fs[:done] = saved["fs"][:done]
    group = max(1, batch_size // (2 * n_images))
    chunk = max(1, min(n_images, batch_size // 2))
    last_saved = done
    while done < len(todo):
        batch = [t for t in todo[done:done + group] if t[0] == todo[done][0]]
        rows = _channel_directions(G, clip, base, ws, batch[0][0], [c for _, c in batch], stats, strength, chunk,
                                   synthesis_kwargs)
        fs[done:done + len(batch)] = rows.cpu().numpy()
        done += len(batch)
        report(progress, done / len(todo), f"channel relevance: {done} of {len(todo)} channels")
        stop_now = stop_requested(should_stop)
        if checkpoint is not None and (stop_now or done - last_saved >= 64 or done == len(todo)):
            _save_partial(Path(checkpoint), fs, done, meta)
            last_saved = done
        if stop_now and done < len(todo):
            raise Cancelled(f"stopped after {done} of {len(todo)} channels; run again to resume")
    stats_cpu = StyleStats([m.cpu() for m in stats.mean], [s.cpu() for s in stats.std])
    return ChannelRelevance(fs, tuple(l.index for l in chosen), stats_cpu,
                            f"computed: {n_images} images per channel, CLIP {clip.name}")


def _channel_directions(G: torch.nn.Module, clip: ClipModel, base: list[torch.Tensor], ws: torch.Tensor, layer: int,
                        channels: list[int], stats: StyleStats, strength: float, chunk: int,
                        kwargs: dict) -> torch.Tensor:
    """Unit CLIP directions [len(channels), D] of channels of one layer, rendering `chunk` images at a time."""
    device = ws.device
    mu, sigma = stats.mean[layer].to(device), stats.std[layer].to(device)
    g, n = len(channels), ws.shape[0]
    total = torch.zeros(g, clip.embed_dim, device=clip.device)
    for start in range(0, n, chunk):
        k = min(start + chunk, n) - start
        styles = [s[start:start + k].repeat(2 * g, 1) for s in base]
        edited = styles[layer].clone().view(g, 2, k, -1)
        for j, c in enumerate(channels):
            edited[j, 0, :, c] = mu[c] - strength * sigma[c]
            edited[j, 1, :, c] = mu[c] + strength * sigma[c]
        styles[layer] = edited.view(2 * g * k, -1)
        images = synthesize_from_styles(G, styles, ws[start:start + k].repeat(2 * g, 1, 1), **kwargs)
        feats = clip.encode_images(images).view(g, 2, k, -1)
        total += torch.nn.functional.normalize(feats[:, 1] - feats[:, 0], dim=-1).sum(1)
    return torch.nn.functional.normalize(total, dim=-1)


def _save_partial(path: Path, fs: np.ndarray, done: int, meta: str) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, fs=fs, done=np.int64(done), meta=np.str_(meta))

    atomic_write(path, write)


def _stats_arrays(stats: StyleStats) -> dict[str, np.ndarray]:
    return {**{f"mean{i:02d}": m.numpy() for i, m in enumerate(stats.mean)},
            **{f"std{i:02d}": s.numpy() for i, s in enumerate(stats.std)}}


def _stats_from(data: "np.lib.npyio.NpzFile", count: int) -> StyleStats:
    return StyleStats([torch.from_numpy(data[f"mean{i:02d}"]) for i in range(count)],
                      [torch.from_numpy(data[f"std{i:02d}"]) for i in range(count)])


def cached_relevance(G: torch.nn.Module, model_key: str, clip: ClipModel, n_images: int = 100,
                     stat_samples: int = 100_000, seed: int = 0, batch_size: int = 16,
                     layers: Optional[Sequence[int]] = None, progress: Progress = None,
                     should_stop: ShouldStop = None, **synthesis_kwargs: object) -> ChannelRelevance:
    """compute_relevance with the result kept in the model's editing cache (resumed when interrupted)."""
    chosen = list(layers) if layers is not None else [l.index for l in relevant_layers(G)]
    tag = hashlib.sha256(f"{clip.name}|{n_images}|{stat_samples}|{seed}|{chosen}".encode()).hexdigest()[:16]
    folder = editing_cache_dir(model_key)
    final, partial = folder / f"styleclip-relevance-{tag}.npz", folder / f"styleclip-relevance-{tag}.partial.npz"
    count = len(style_layers(G))
    if final.exists():
        with np.load(final, allow_pickle=False) as data:
            return ChannelRelevance(data["fs"], tuple(int(i) for i in data["layers"]), _stats_from(data, count),
                                    str(data["source"]) + " (cached)")
    stats = style_stats(G, stat_samples)
    table = compute_relevance(G, clip, stats, n_images, chosen, seed=seed, batch_size=batch_size, checkpoint=partial,
                              progress=progress, should_stop=should_stop, **synthesis_kwargs)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, fs=table.fs, layers=np.asarray(table.layers), source=np.str_(table.source),
                     **_stats_arrays(table.stats))

    atomic_write(final, write)
    partial.unlink(missing_ok=True)
    return table


def released_relevance(G: torch.nn.Module, card_id: str, model_key: str, clip_name: str,
                       progress: ByteProgress = None, stat_samples: int = 100_000
                       ) -> Optional[ChannelRelevance]:
    """The released fs3.npy (with S statistics of this network) when G and the CLIP model are the
    ones it was made with; None otherwise."""
    if card_id not in RELEASED_FOR or clip_name not in RELEASED_CLIP \
            or tuple(l.channels for l in style_layers(G)) != RELEASED_LAYOUT:
        return None
    fs = np.load(fetch_asset(FS3_NPY, progress=progress),
                 allow_pickle=False).astype(np.float32)
    layers = tuple(l.index for l in relevant_layers(G))
    _check_table(G, fs, layers)
    stats_path = editing_cache_dir(model_key) / f"styleclip-s-stats-{int(stat_samples)}.npz"
    count = len(style_layers(G))
    if stats_path.exists():
        with np.load(stats_path, allow_pickle=False) as data:
            stats = _stats_from(data, count)
    else:
        stats = style_stats(G, stat_samples)
        stats = StyleStats([m.cpu() for m in stats.mean], [s.cpu() for s in stats.std])

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, **_stats_arrays(stats))

        atomic_write(stats_path, write)
    return ChannelRelevance(fs, layers, stats, f"released {FS3_NPY.repo_id}/{FS3_NPY.filename}")
