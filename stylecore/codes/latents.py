"""Latent codes: seeds to z, class labels, W / W+ codes saved and loaded as .npz.

Seeds map to z exactly as the official scripts do (`RandomState(seed).randn(z_dim)`), so a seed
gives the same face here as in gen_images.py.
"""
from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

from stylecore.formats.archive import check_zip_members

MAX_SEED = 2 ** 32 - 1
MAX_CODES_BYTES = 256 * 2 ** 20  # an .npz of codes is tiny; more is refused before decompressing
_RANGE = re.compile(r"^\s*(-?\d+)\s*(?:(?:-|\.\.)\s*(-?\d+))?\s*$")


def parse_seeds(text: Union[str, int, Sequence[int]], max_count: int = 256) -> list[int]:
    """'0-7, 42' -> [0, ..., 7, 42]; also accepts an int or a list of ints. Order kept, duplicates dropped."""
    if isinstance(text, (int, np.integer)):
        parts: list[str] = [str(int(text))]
    elif isinstance(text, str):
        parts = [p for p in re.split(r"[,;\s]+", re.sub(r"\s*(-|\.\.)\s*", r"\1", text.strip())) if p]
    else:
        parts = [str(int(v)) for v in text]
    if not parts:
        raise ValueError("no seeds given: enter seeds like '0-7, 42'")
    seeds: list[int] = []
    for part in parts:
        m = _RANGE.match(part)
        if not m:
            raise ValueError(f"cannot read seed {part!r}: use whole numbers and ranges like '0-7, 42'")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if lo > hi:
            raise ValueError(f"seed range {part!r} runs backwards: write it as '{hi}-{lo}'")
        if lo < 0 or hi > MAX_SEED:
            raise ValueError(f"seed {part!r} is out of range: seeds go from 0 to {MAX_SEED}")
        if hi - lo + 1 > max_count:
            raise ValueError(f"seed range {part!r} has {hi - lo + 1} seeds; at most {max_count} at once")
        for s in range(lo, hi + 1):
            if s not in seeds:
                seeds.append(s)
        if len(seeds) > max_count:
            raise ValueError(f"too many seeds ({len(seeds)}+); at most {max_count} at once")
    return seeds


def z_from_seeds(seeds: Sequence[int], z_dim: int, device: Union[str, torch.device] = "cpu") -> torch.Tensor:
    """One z per seed, as the official generation scripts draw them."""
    z = np.stack([np.random.RandomState(int(s)).randn(z_dim) for s in seeds])
    return torch.from_numpy(z).to(device=device, dtype=torch.float32)


def class_labels(c_dim: int, class_idx: Optional[int], count: int,
                 device: Union[str, torch.device] = "cpu") -> Optional[torch.Tensor]:
    """One-hot labels for conditional generators; None for unconditional ones."""
    if c_dim == 0:
        return None
    if class_idx is None:
        raise ValueError(f"this model is conditional: choose a class from 0 to {c_dim - 1}")
    if not 0 <= int(class_idx) < c_dim:
        raise ValueError(f"class {class_idx} is out of range: this model has classes 0 to {c_dim - 1}")
    c = torch.zeros([count, c_dim], device=device)
    c[:, int(class_idx)] = 1
    return c


def seeds_to_ws(G: torch.nn.Module, seeds: Sequence[int], truncation_psi: float = 1.0,
                truncation_cutoff: Optional[int] = None, class_idx: Optional[int] = None,
                device: Union[str, torch.device, None] = None) -> torch.Tensor:
    """W+ codes [N, num_ws, w_dim] for seeds, through the mapping with truncation (and the class
    label of conditional models), on G's device unless told otherwise."""
    device = device if device is not None else next(G.parameters()).device
    z = z_from_seeds(seeds, G.z_dim, device)
    c = class_labels(G.c_dim, class_idx, len(seeds), device)
    return G.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)


def save_latents(path: Union[str, Path], ws: torch.Tensor, **meta: Union[str, int, float]) -> Path:
    """Write W+ codes as .npz with key 'w' [N, num_ws, w_dim] (the official projector's layout)."""
    path = Path(path)
    arrays = {"w": ws.detach().cpu().numpy().astype(np.float32)}
    arrays.update({k: np.asarray(v) for k, v in meta.items()})
    np.savez(path, **arrays)
    return path


def _npz_arrays(path: Union[str, Path], keys: Optional[Sequence[str]] = None) -> dict[str, np.ndarray]:
    """The arrays of a codes .npz (all, or those of `keys` it has), read as data only: no pickles, and an
    archive that would expand past MAX_CODES_BYTES refused before decompressing. A ValueError names the file,
    not its folder (uploads live in server temp folders)."""
    try:
        if not zipfile.is_zipfile(path):  # numpy would read it as a pickle (and suggest allow_pickle) or as .npy
            raise ValueError("not a zip archive; an .npz of codes is written by numpy.savez with the key 'w'")
        check_zip_members(path, max_expanded=MAX_CODES_BYTES)
        with np.load(path, allow_pickle=False) as data:
            return {key: np.asarray(data[key]) for key in data.files if keys is None or key in keys}
    except (OSError, EOFError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{Path(path).name}: not a readable .npz file ({exc})") from exc


def code_text(path: Union[str, Path], key: str) -> str:
    """A text field saved beside the codes (e.g. 'tuned_weights'), or '' when the file has none or is unreadable:
    the codes themselves are read and checked by `load_latents`."""
    try:
        value = _npz_arrays(path, [key]).get(key)
    except ValueError:
        return ""
    return str(value) if value is not None and value.dtype.kind == "U" and value.ndim == 0 else ""


def load_latents(path: Union[str, Path], num_ws: Optional[int] = None, w_dim: Optional[int] = None) -> torch.Tensor:
    """Read W or W+ codes from .npz (key 'w'); W [N, w_dim] is broadcast to W+ when num_ws is given.
    Messages name the file, not its folder (uploads live in server temp folders)."""
    name = Path(path).name
    arrays = _npz_arrays(path)
    if "w" not in arrays:
        raise ValueError(f"{name}: no array named 'w' (found: {', '.join(arrays) or 'nothing'})")
    w = arrays["w"]
    if w.dtype.kind != "f":
        raise ValueError(f"{name}: 'w' must hold floating-point numbers, not {w.dtype}")
    if w.ndim == 2:
        w = w[:, None, :].repeat(num_ws or 1, axis=1)
    if w.ndim != 3:
        raise ValueError(f"{name}: 'w' must have shape [N, num_ws, w_dim] or [N, w_dim], got {list(w.shape)}")
    if num_ws is not None and w.shape[1] != num_ws or w_dim is not None and w.shape[2] != w_dim:
        raise ValueError(f"{name}: code shape {list(w.shape)} does not fit this model (needs [N, {num_ws}, {w_dim}])")
    if not np.isfinite(w).all():
        raise ValueError(f"{name}: 'w' contains NaN or infinite values")
    return torch.from_numpy(w.astype(np.float32))
