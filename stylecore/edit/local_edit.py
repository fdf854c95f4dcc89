"""Local semantic editing in the spirit of Editing in Style (Collins et al. 2020), ported to StyleGAN2's S.

1. Parts: the activations of one synthesis block over N sampled images are clustered with spherical
   k-means (cosine distance, k-means++ start from a seed); each cluster is a part (eyes, hair,
   background ... once a person names them). Computed once per model and settings, cached on disk.
2. Contributions: for every style layer, the share of each input channel's activation energy that
   falls in each part (averaged over the same samples). A channel whose energy sits mostly inside a
   part is one that paints that part.
3. Transfer: to give the target the reference's version of a part, the style channels of that part
   (share ≥ threshold) are interpolated from the target's towards the reference's S values; all
   other channels keep the target's, so the rest of the image changes little. How concentrated a
   part's channels are differs between networks (an untrained one spreads every channel over all
   parts) and with the number of parts, so callers may give the threshold relative to the part's
   most concentrated channel (`part_threshold`): a selectivity of 0.5 picks the channels at least
   half as concentrated in the part as that one, which always moves something.
4. Confining (optional, on by default in the tab): in a trained generator step 3 is already mostly
   local, but StyleGAN2's weight demodulation and the following convolutions spread some change
   everywhere. `render_confined` runs every modulated layer with both the target's and the edited
   styles and keeps the edited output only inside the part (its mask resampled to each layer's
   size), then composites the final image with the part's soft mask: outside the part the result
   is the target image exactly, inside it the edited features grow into their surroundings.

StyleGAN2 only: StyleGAN3's feature maps carry margins and move with the input transform.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from stylecore.engine.assets import atomic_write, editing_cache_dir
from stylecore.codes.generate import to_uint8
from stylecore.codes.latents import seeds_to_ws
from stylecore.codes.stylespace import StyleLayer, replace_submodules, style_layers
from stylecore.progress import Progress, report

__all__ = ["PartModel", "PALETTE", "PALETTE_NAMES", "feature_blocks", "default_block", "compute_parts",
           "cached_parts", "parts_cache_path", "part_map", "part_masks", "colorize_parts", "overlay_parts",
           "part_threshold", "transfer_part", "part_channel_counts", "render_confined", "part_overview"]

PARTS_FORMAT = 1
MAX_POINTS = 200_000  # pixels used to fit the centroids (all of them are used for the contributions)
PALETTE = np.array([[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48], [145, 30, 180],
                    [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212], [0, 128, 128],
                    [220, 190, 255], [170, 110, 40], [255, 250, 200], [128, 0, 0], [170, 255, 195],
                    [128, 128, 0], [255, 215, 180], [0, 0, 128], [128, 128, 128]], dtype=np.uint8)
# What a person calls each PALETTE colour (the names of Sasha Trubetskoy's 20 distinct colours).
PALETTE_NAMES = ("red", "green", "yellow", "blue", "orange", "purple", "cyan", "magenta", "lime", "pink", "teal",
                 "lavender", "brown", "beige", "maroon", "mint", "olive", "apricot", "navy", "grey")


@dataclass(frozen=True)
class PartModel:
    """Part centroids in one block's feature space, and each style channel's share in each part."""

    block: str  # e.g. "b32"
    centroids: np.ndarray  # [k, C], unit rows
    contributions: list  # per style layer: [k, channels] float32, each column sums to 1
    n_samples: int
    seed: int

    @property
    def k(self) -> int:
        return int(self.centroids.shape[0])


def _check_stylegan2(G: torch.nn.Module) -> None:
    if G.architecture != "stylegan2":
        raise ValueError("local editing (parts) works with StyleGAN2 models only")


def feature_blocks(G: torch.nn.Module) -> list[str]:
    """The blocks whose output can be clustered into parts: 'b8' ... up to the last-but-one."""
    _check_stylegan2(G)
    return [f"b{r}" for r in G.synthesis.block_resolutions[1:-1]] or [f"b{G.synthesis.block_resolutions[-1]}"]


def default_block(G: torch.nn.Module) -> str:
    """32x32 features when there are any (coarse enough for parts, fine enough for their outlines)."""
    blocks = feature_blocks(G)
    return "b32" if "b32" in blocks else blocks[len(blocks) // 2]


class _Record(torch.nn.Module):
    """Runs the wrapped module and keeps its input (layers) or output features (blocks)."""

    def __init__(self, inner: torch.nn.Module, sink: dict, key: str, what: str):
        super().__init__()
        self.inner = inner
        self.sink = sink
        self.key = key
        self.what = what

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:  # the network reads attributes of its blocks (num_conv, ...)
            return getattr(self._modules["inner"], name)

    def forward(self, *args, **kwargs):
        out = self.inner(*args, **kwargs)
        self.sink[self.key] = (args[0] if self.what == "input" else out[0]).detach().float()
        return out


def _run_recording(G: torch.nn.Module, ws: torch.Tensor, block: str, layers: Sequence[StyleLayer],
                   kwargs: dict) -> tuple[torch.Tensor, dict]:
    """Synthesize ws; return the block's output features and each style layer's input."""
    sink: dict = {}
    wrappers = {l.name: _Record(G.synthesis.get_submodule(l.name), sink, l.name, "input") for l in layers}
    inner_block = replace_submodules(G.synthesis.get_submodule(block),
                                     {n.split(".", 1)[1]: w for n, w in wrappers.items() if n.startswith(block + ".")})
    replacements = {n: w for n, w in wrappers.items() if not n.startswith(block + ".")}
    replacements[block] = _Record(inner_block, sink, "__block__", "output")
    with torch.no_grad():
        replace_submodules(G.synthesis, replacements)(ws, **kwargs)
    return sink.pop("__block__"), sink


def _kmeans(points: torch.Tensor, k: int, seed: int, iterations: int = 40) -> torch.Tensor:
    """Spherical k-means on unit rows with a seeded k-means++ start; returns unit centroids [k, C]."""
    gen = torch.Generator().manual_seed(int(seed))
    n = points.shape[0]
    first = int(torch.randint(n, (1,), generator=gen))
    centroids = points[first:first + 1]
    dist = (1 - points @ centroids.T).clamp(min=0).squeeze(1)
    for _ in range(1, k):
        weights = dist.cpu().double()
        pick = int(torch.multinomial(weights / weights.sum(), 1, generator=gen)) if weights.sum() > 0 else \
            int(torch.randint(n, (1,), generator=gen))
        centroids = torch.cat([centroids, points[pick:pick + 1]])
        dist = torch.minimum(dist, (1 - points @ points[pick]).clamp(min=0))
    for _ in range(iterations):
        labels = (points @ centroids.T).argmax(dim=1)
        sums = torch.zeros_like(centroids).index_add_(0, labels, points)
        empty = sums.norm(dim=1) == 0
        sums[empty] = centroids[empty]  # keep an empty cluster where it was
        new = F.normalize(sums, dim=1)
        if torch.allclose(new, centroids, atol=1e-6):
            break
        centroids = new
    return centroids


def _soft_masks(labels: torch.Tensor, k: int, size: int) -> torch.Tensor:
    """Labels [N, h, w] -> part weights [N, k, size, size] (area-resampled one-hot, sums to 1)."""
    onehot = F.one_hot(labels, k).permute(0, 3, 1, 2).float()
    if onehot.shape[-1] == size:
        return onehot
    mode = "area" if onehot.shape[-1] > size else "nearest"
    return F.interpolate(onehot, size=(size, size), mode=mode)


def _labels(features: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Features [N, C, h, w] -> nearest part by cosine [N, h, w]."""
    unit = F.normalize(features, dim=1)
    return torch.einsum("nchw,kc->nkhw", unit, centroids).argmax(dim=1)


@torch.no_grad()
def compute_parts(G: torch.nn.Module, k: int = 8, n_samples: int = 64, block: Optional[str] = None, seed: int = 0,
                  truncation_psi: float = 0.7, class_idx: Optional[int] = None, batch_size: int = 8,
                  progress: Progress = None, **synthesis_kwargs: object) -> PartModel:
    """Cluster one block's features of `n_samples` seeded images into `k` parts, and measure which
    style channels act on which part."""
    _check_stylegan2(G)
    block = block or default_block(G)
    if block not in feature_blocks(G):
        raise ValueError(f"features must come from one of {', '.join(feature_blocks(G))}, not {block!r}")
    if not 2 <= int(k) <= len(PALETTE):
        raise ValueError(f"the number of parts must be from 2 to {len(PALETTE)}, got {k}")
    if not 1 <= int(n_samples) <= 10_000:
        raise ValueError(f"the number of samples must be from 1 to 10000, got {n_samples}")
    synthesis_kwargs.setdefault("noise_mode", "const")
    device = next(G.parameters()).device
    layers = style_layers(G)
    seeds = list(range(int(seed), int(seed) + int(n_samples)))
    batches = [seeds[i:i + batch_size] for i in range(0, len(seeds), batch_size)]

    def sample(batch: list[int]) -> torch.Tensor:
        return seeds_to_ws(G, batch, truncation_psi, class_idx=class_idx, device=device)

    # Pass 1: features -> centroids.
    feats = []
    for i, batch in enumerate(batches):
        f, _ = _run_recording(G, sample(batch), block, [], synthesis_kwargs)
        feats.append(f.cpu())
        report(progress, 0.4 * (i + 1) / len(batches), f"features of {min((i + 1) * batch_size, len(seeds))} images")
    features = torch.cat(feats)
    points = F.normalize(features.permute(0, 2, 3, 1).reshape(-1, features.shape[1]), dim=1)
    if points.shape[0] > MAX_POINTS:
        pick = torch.randperm(points.shape[0], generator=torch.Generator().manual_seed(int(seed)))[:MAX_POINTS]
        points = points[pick]
    report(progress, 0.45, f"k-means with {k} parts on {points.shape[0]} feature vectors")
    centroids = _kmeans(points.to(device), int(k), int(seed))

    # Pass 2: each style layer's input energy per part.
    energy_in = [torch.zeros([int(k), l.channels], dtype=torch.float64, device=device) for l in layers]
    energy_all = [torch.zeros([l.channels], dtype=torch.float64, device=device) for l in layers]
    for i, batch in enumerate(batches):
        f, inputs = _run_recording(G, sample(batch), block, layers, synthesis_kwargs)
        labels = _labels(f, centroids)
        for j, layer in enumerate(layers):
            x = inputs[layer.name]
            energy = x.square()
            masks = _soft_masks(labels, int(k), x.shape[-1])
            energy_in[j] += torch.einsum("nkhw,nchw->kc", masks, energy).double()
            energy_all[j] += energy.sum((0, 2, 3)).double()
        done = min((i + 1) * batch_size, len(seeds))
        report(progress, 0.5 + 0.5 * (i + 1) / len(batches), f"channel shares from {done} images")
    contributions = [(e / a.clamp(min=1e-30)).float().cpu().numpy() for e, a in zip(energy_in, energy_all)]
    return PartModel(block=block, centroids=centroids.cpu().numpy(), contributions=contributions,
                     n_samples=int(n_samples), seed=int(seed))


def parts_cache_path(model_key: str, block: str, k: int, n_samples: int, seed: int, truncation_psi: float) -> Path:
    name = f"parts-{block}-k{int(k)}-n{int(n_samples)}-seed{int(seed)}-psi{truncation_psi:g}.npz"
    return editing_cache_dir(model_key) / name


def _save(path: Path, parts: PartModel) -> None:
    arrays = {"format": np.asarray(PARTS_FORMAT), "block": np.asarray(parts.block), "centroids": parts.centroids,
              "n_samples": np.asarray(parts.n_samples), "seed": np.asarray(parts.seed)}
    arrays.update({f"c{i:02d}": c for i, c in enumerate(parts.contributions)})

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    atomic_write(path, write)


def _load(path: Path) -> Optional[PartModel]:
    try:
        with np.load(path, allow_pickle=False) as data:
            if int(data["format"]) != PARTS_FORMAT:
                return None
            names = sorted(n for n in data.files if n.startswith("c") and n[1:].isdigit())
            return PartModel(block=str(data["block"]), centroids=np.asarray(data["centroids"]),
                             contributions=[np.asarray(data[n]) for n in names], n_samples=int(data["n_samples"]),
                             seed=int(data["seed"]))
    except (OSError, ValueError, KeyError, EOFError):
        return None


def cached_parts(G: torch.nn.Module, model_key: str, k: int = 8, n_samples: int = 64, block: Optional[str] = None,
                 seed: int = 0, truncation_psi: float = 0.7, progress: Progress = None,
                 **synthesis_kwargs: object) -> PartModel:
    """compute_parts, kept on disk per model and settings so it runs once."""
    block = block or default_block(G)
    blocks = feature_blocks(G)
    if block not in blocks:
        raise ValueError(f"unknown feature block {block[:40]!r}: this model has {', '.join(blocks)}")
    path = parts_cache_path(model_key, block, k, n_samples, seed, truncation_psi)
    if path.is_file():
        parts = _load(path)
        if parts is not None and [c.shape[1] for c in parts.contributions] == [l.channels for l in style_layers(G)]:
            report(progress, 1.0, "parts loaded from the cache")
            return parts
    parts = compute_parts(G, k, n_samples, block, seed, truncation_psi, progress=progress, **synthesis_kwargs)
    try:
        _save(path, parts)
    except OSError:
        pass  # an unwritable cache only costs time next run
    return parts


@torch.no_grad()
def part_map(G: torch.nn.Module, ws: torch.Tensor, parts: PartModel, **synthesis_kwargs: object) -> np.ndarray:
    """Part labels [N, R, R] (image resolution) for the images of ws."""
    synthesis_kwargs.setdefault("noise_mode", "const")
    features, _ = _run_recording(G, ws, parts.block, [], synthesis_kwargs)
    centroids = torch.from_numpy(parts.centroids).to(features.device)
    labels = _labels(features, centroids)
    size = G.img_resolution
    up = F.interpolate(labels[:, None].float(), size=(size, size), mode="nearest")[:, 0]
    return up.long().cpu().numpy()


def part_masks(labels: np.ndarray, part: int) -> np.ndarray:
    """Boolean mask of one part from part_map's labels."""
    return np.asarray(labels) == int(part)


def colorize_parts(labels: np.ndarray) -> np.ndarray:
    """Labels [H, W] -> an RGB uint8 picture, one colour per part."""
    return PALETTE[np.asarray(labels) % len(PALETTE)]


def overlay_parts(image: np.ndarray, labels: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The part colours laid over an RGB uint8 image."""
    colours = colorize_parts(labels).astype(np.float32)
    return (image.astype(np.float32) * (1 - alpha) + colours * alpha).round().clip(0, 255).astype(np.uint8)


def _checked_part(parts: PartModel, part: int) -> int:
    if not 0 <= int(part) < parts.k:
        raise ValueError(f"part must be from 0 to {parts.k - 1}, got {part}")
    return int(part)


def _part_weights(parts: PartModel, part: int, threshold: float, strength: float,
                  layers: Optional[Sequence[int]]) -> list[np.ndarray]:
    part = _checked_part(parts, part)
    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold must be from 0 to 1, got {threshold}")
    chosen = set(range(len(parts.contributions))) if layers is None else {int(i) for i in layers}
    return [(c[part] >= threshold).astype(np.float32) * float(strength) if i in chosen
            else np.zeros(c.shape[1], dtype=np.float32) for i, c in enumerate(parts.contributions)]


def part_threshold(parts: PartModel, part: int, selectivity: float) -> float:
    """The share threshold that picks the channels at least `selectivity` (0..1) as concentrated in
    `part` as its most concentrated channel: 1 keeps only the most specific channels, 0 takes every one."""
    part = _checked_part(parts, part)
    if not 0.0 <= float(selectivity) <= 1.0:
        raise ValueError(f"selectivity must be from 0 to 1, got {selectivity}")
    return float(selectivity) * max(float(c[part].max()) for c in parts.contributions)


def part_channel_counts(parts: PartModel, part: int, threshold: float) -> int:
    """How many style channels a transfer of `part` at `threshold` changes."""
    return int(sum(w.sum() for w in _part_weights(parts, part, threshold, 1.0, None)))


def transfer_part(target: Sequence[torch.Tensor], reference: Sequence[torch.Tensor], parts: PartModel, part: int,
                  strength: float = 1.0, threshold: float = 0.5,
                  layers: Optional[Sequence[int]] = None) -> list[torch.Tensor]:
    """Target S with the part's channels moved `strength` of the way to the reference's values."""
    if len(target) != len(parts.contributions) or len(reference) != len(target):
        raise ValueError("the part model, target and reference come from different generators")
    weights = _part_weights(parts, part, threshold, strength, layers)
    out = []
    for t, r, q in zip(target, reference, weights):
        q_t = torch.from_numpy(q).to(t.device)
        out.append(t + q_t * (r.expand_as(t) - t))
    return out


class _Blend(torch.nn.Module):
    """A modulated layer run with the target's and the edited styles; edited output only inside the mask."""

    def __init__(self, layer: torch.nn.Module, target: torch.Tensor, edited: torch.Tensor, mask: torch.Tensor):
        super().__init__()
        from stylecore.codes.stylespace import GivenStyles

        self.plain = replace_submodules(layer, {"affine": GivenStyles(target)})
        self.edited = replace_submodules(layer, {"affine": GivenStyles(edited)})
        self.mask = mask

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        a = self.plain(x, *args, **kwargs)
        b = self.edited(x, *args, **kwargs)
        return torch.lerp(a, b, self.mask.to(a.dtype))


@torch.no_grad()
def render_confined(G: torch.nn.Module, target: Sequence[torch.Tensor], edited: Sequence[torch.Tensor],
                    mask: np.ndarray, **synthesis_kwargs: object) -> torch.Tensor:
    """Images of `edited` S codes whose change from `target` stays inside `mask` ([H, W] bool, any
    size, usually a part of part_map); the final image equals target's wherever the mask is 0."""
    _check_stylegan2(G)
    layers = style_layers(G)
    if len(target) != len(layers) or len(edited) != len(layers):
        raise ValueError(f"this model has {len(layers)} style layers")
    device = target[0].device
    m = torch.from_numpy(np.asarray(mask, dtype=np.float32)).to(device)[None, None]
    if m.ndim != 4 or float(m.sum()) == 0:
        raise ValueError("the mask to confine the edit to is empty")

    def at(size: int) -> torch.Tensor:
        mode = "area" if m.shape[-1] > size else "bilinear"
        extra = {} if mode == "area" else {"align_corners": False}
        return F.interpolate(m, size=(size, size), mode=mode, **extra).clamp(0, 1)

    blends = {}
    for layer, t, e in zip(layers, target, edited):
        module = G.synthesis.get_submodule(layer.name)
        blends[layer.name] = _Blend(module, t, e, at(layer.resolution))
    n = target[0].shape[0]
    ws = torch.zeros([n, G.num_ws, G.w_dim], device=device)
    synthesis_kwargs.setdefault("noise_mode", "const")
    from stylecore.codes.stylespace import synthesize_from_styles

    mixed = replace_submodules(G.synthesis, blends)(ws, **synthesis_kwargs)
    plain = synthesize_from_styles(G, target, **synthesis_kwargs)
    return torch.lerp(plain, mixed, at(G.img_resolution))


@torch.no_grad()
def part_view(G: torch.nn.Module, ws: torch.Tensor, parts: PartModel,
              **synthesis_kwargs: object) -> tuple[np.ndarray, np.ndarray]:
    """ws[0]'s image with its parts coloured over it (uint8), and its part map (labels [H, W])."""
    synthesis_kwargs.setdefault("noise_mode", "const")
    labels = part_map(G, ws[:1], parts, **synthesis_kwargs)[0]
    image = to_uint8(G.synthesis(ws[:1], **synthesis_kwargs))[0]
    return overlay_parts(image, labels), labels


def part_overview(G: torch.nn.Module, ws: torch.Tensor, parts: PartModel,
                  **synthesis_kwargs: object) -> tuple[np.ndarray, np.ndarray]:
    """ws[0]'s image with its parts coloured over it (uint8), and each part's share of the image [k]."""
    overlay, labels = part_view(G, ws, parts, **synthesis_kwargs)
    return overlay, np.bincount(labels.ravel(), minlength=parts.k) / labels.size
