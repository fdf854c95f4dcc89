"""GANSpace-style editing (Härkönen et al. 2020): principal components of W, applied on chosen W+ rows.

The PCA needs only the generator: N codes are sampled from seeded z, mapped to W (no truncation),
and the exact covariance is accumulated in float64 batch by batch (memory w_dim², any N), then
eigendecomposed. The same (model, N, k, seed) always gives the same components, so results are
cached on disk per model. e4e's `ganspace_pca/*.pt` files (mean, comp, std) load too.
"""
from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

from stylecore.engine.assets import atomic_write, editing_cache_dir
from stylecore.edit.interfacegan import apply_direction
from stylecore.codes.latents import class_labels
from stylecore.progress import Progress, report

__all__ = ["PCA", "compute_pca", "cached_pca", "pca_cache_path", "save_pca", "load_pca", "apply_component"]

PCA_FORMAT = 1
MAX_SAMPLES = 2_000_000


@dataclass(frozen=True)
class PCA:
    """Principal directions of W: unit `components` [k, w_dim], the std of codes along each, and the
    share of W's total variance each explains."""

    mean: np.ndarray
    components: np.ndarray
    stdev: np.ndarray
    explained: np.ndarray
    n_samples: int
    seed: int
    source: str = "computed"

    @property
    def n_components(self) -> int:
        return int(self.components.shape[0])

    def variance_table(self, count: Optional[int] = None) -> list[list]:
        """Rows [component, % of variance, cumulative %] for the first `count` components."""
        count = self.n_components if count is None else min(count, self.n_components)
        cumulative = np.cumsum(self.explained)
        return [[i, round(float(self.explained[i]) * 100, 3), round(float(cumulative[i]) * 100, 3)]
                for i in range(count)]


def _orient(components: np.ndarray) -> np.ndarray:
    """Fix each eigenvector's arbitrary sign: its largest-magnitude entry is positive."""
    idx = np.abs(components).argmax(axis=1)
    signs = np.sign(components[np.arange(len(components)), idx])
    signs[signs == 0] = 1
    return components * signs[:, None]


@torch.no_grad()
def compute_pca(G: torch.nn.Module, n_samples: int = 20_000, n_components: int = 80, seed: int = 0,
                class_idx: Optional[int] = None, batch_size: int = 2048, progress: Progress = None) -> PCA:
    """PCA of W over `n_samples` codes from z drawn with RandomState(seed); reproducible bit for bit."""
    n_samples, n_components = int(n_samples), int(n_components)
    if not 2 <= n_samples <= MAX_SAMPLES:
        raise ValueError(f"the number of samples must be from 2 to {MAX_SAMPLES}, got {n_samples}")
    if not 1 <= n_components <= G.w_dim:
        raise ValueError(f"the number of components must be from 1 to {G.w_dim} (the size of W), got {n_components}")
    device = next(G.parameters()).device
    rng = np.random.RandomState(int(seed))
    total = torch.zeros([G.w_dim], dtype=torch.float64, device=device)
    outer = torch.zeros([G.w_dim, G.w_dim], dtype=torch.float64, device=device)
    done = 0
    while done < n_samples:
        count = min(batch_size, n_samples - done)
        z = torch.from_numpy(rng.randn(count, G.z_dim)).to(device=device, dtype=torch.float32)
        c = class_labels(G.c_dim, class_idx, count, device)
        w = G.mapping(z, c)[:, 0].to(torch.float64)
        total += w.sum(dim=0)
        outer += w.T @ w
        done += count
        report(progress, 0.95 * done / n_samples, f"PCA: mapped {done} of {n_samples} samples")
    mean = total / n_samples
    cov = (outer - n_samples * torch.outer(mean, mean)) / max(n_samples - 1, 1)
    eigvals, eigvecs = torch.linalg.eigh(cov.cpu())
    eigvals = eigvals.flip(0).clamp(min=0).numpy()
    eigvecs = eigvecs.flip(1).T.numpy()
    total_var = float(eigvals.sum()) or 1.0
    report(progress, 1.0, f"PCA of {n_samples} samples done")
    return PCA(mean=mean.cpu().numpy().astype(np.float32),
               components=_orient(eigvecs[:n_components]).astype(np.float32),
               stdev=np.sqrt(eigvals[:n_components]).astype(np.float32),
               explained=(eigvals[:n_components] / total_var).astype(np.float32),
               n_samples=n_samples, seed=int(seed))


def save_pca(path: Union[str, Path], pca: PCA) -> Path:
    """Write a PCA as .npz (atomically: a reader never sees half a file)."""
    path = Path(path)
    arrays = dict(format=np.asarray(PCA_FORMAT), mean=pca.mean, components=pca.components, stdev=pca.stdev,
                  explained=pca.explained, n_samples=np.asarray(pca.n_samples), seed=np.asarray(pca.seed))

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    atomic_write(path, write)
    return path


def _from_e4e(obj: object, name: str) -> PCA:
    """e4e's ganspace_pca/*.pt: {'mean': [1, w_dim], 'comp': [k, 1, w_dim], 'std': [k]}."""
    if not isinstance(obj, dict) or not {"mean", "comp", "std"} <= set(obj):
        raise ValueError(f"{name}: expected a dict with 'mean', 'comp' and 'std' (e4e's GANSpace layout)")
    mean = obj["mean"].detach().float().reshape(-1).numpy()
    comp = obj["comp"].detach().float().reshape(obj["comp"].shape[0], -1).numpy()
    std = obj["std"].detach().float().reshape(-1).numpy()
    if comp.shape[1] != mean.shape[0] or std.shape[0] != comp.shape[0]:
        raise ValueError(f"{name}: mean {list(mean.shape)}, comp {list(comp.shape)} and std {list(std.shape)} "
                         "do not fit together")
    var = std.astype(np.float64) ** 2
    # The file has no total variance: shares are of the variance its k components hold.
    return PCA(mean=mean, components=comp, stdev=std, explained=(var / var.sum()).astype(np.float32),
               n_samples=0, seed=-1, source=f"{name} (shares of the stored components' variance)")


def load_pca(path: Union[str, Path]) -> PCA:
    """Read a PCA saved by save_pca (.npz) or e4e's GANSpace .pt (weights-only, nothing executed)."""
    path = Path(path)
    if path.suffix.lower() in (".pt", ".pth"):
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile) as exc:
            raise ValueError(f"{path.name}: not a tensor file torch can read safely ({exc})") from exc
        return _from_e4e(obj, path.name)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: np.asarray(data[k]) for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path.name}: not a readable PCA .npz ({exc})") from exc
    needed = {"format", "mean", "components", "stdev", "explained", "n_samples", "seed"}
    if not needed <= set(arrays) or int(arrays["format"]) != PCA_FORMAT:
        raise ValueError(f"{path.name}: not a PCA file of this version")
    return PCA(mean=arrays["mean"], components=arrays["components"], stdev=arrays["stdev"],
               explained=arrays["explained"], n_samples=int(arrays["n_samples"]), seed=int(arrays["seed"]),
               source=f"cached {path.name}")


def pca_cache_path(model_key: str, n_samples: int, n_components: int, seed: int) -> Path:
    return editing_cache_dir(model_key) / f"ganspace-n{int(n_samples)}-k{int(n_components)}-seed{int(seed)}.npz"


def cached_pca(G: torch.nn.Module, model_key: str, n_samples: int = 20_000, n_components: int = 80,
               seed: int = 0, class_idx: Optional[int] = None, progress: Progress = None) -> PCA:
    """The PCA for this model and settings from the disk cache, computing (and caching) it once."""
    path = pca_cache_path(model_key, n_samples, n_components, seed)
    if class_idx is not None:
        path = path.with_name(path.stem + f"-class{int(class_idx)}.npz")
    if path.is_file():
        try:
            pca = load_pca(path)
            if pca.components.shape == (n_components, G.w_dim):
                report(progress, 1.0, "PCA loaded from the cache")
                return pca
        except ValueError:
            pass  # damaged or outdated: compute again and overwrite
    pca = compute_pca(G, n_samples, n_components, seed, class_idx=class_idx, progress=progress)
    try:
        save_pca(path, pca)
    except OSError:
        pass  # a cache that cannot be written only costs time next run
    return pca


def apply_component(ws: torch.Tensor, pca: PCA, component: int, strength: float,
                    layers: Optional[Sequence[int]] = None) -> torch.Tensor:
    """Move W+ rows `layers` (all by default) by `strength` standard deviations along a component."""
    component = int(component)
    if not 0 <= component < pca.n_components:
        raise ValueError(f"component must be from 0 to {pca.n_components - 1}, got {component}")
    if pca.components.shape[1] != ws.shape[-1]:
        raise ValueError(f"this PCA is for a W of size {pca.components.shape[1]}, the model's is {ws.shape[-1]}")
    direction = pca.components[component] * pca.stdev[component]
    return apply_direction(ws, direction, strength, layers)
