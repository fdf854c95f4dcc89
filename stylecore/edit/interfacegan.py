"""InterFaceGAN-style linear editing in W / W+ (Shen et al. 2020): move a code along a direction.

Directions come as files: InterFaceGAN boundaries (.npy, [1, w_dim], unit norm, e.g. the
`boundary_Smiling.npy` files of the interfacegan Spaces) or the torch tensors e4e / ReStyle ship
(`age.pt`, `smile.pt`: [1, 512]; `pose.pt`: [1, 18, 512], one row per W+ layer). Conditional editing
removes from the primary direction its component along other attributes' directions, so moving
along the result leaves those attributes' scores unchanged (to first order).
"""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

__all__ = ["LISTED_FOR", "load_direction", "project_out", "apply_direction", "parse_layers"]

PathLike = Union[str, Path]
# Model cards the listed boundaries (stylecore.engine.assets.EDITING_ASSETS) were learned for: NVIDIA's
# StyleGAN2 FFHQ 1024 config-f, in each form the zoo offers it. A direction lives in one network's W:
# on another network of the same size it still moves the image, but not along the attribute.
LISTED_FOR = frozenset({"sg2-ffhq-1024", "sg2-ffhq-1024-tf", "sg2-ffhq-1024-tf-hub", "sg2-ffhq-1024-rosinality"})


def _as_direction(array: np.ndarray, source: str) -> np.ndarray:
    if array.dtype.kind != "f":
        raise ValueError(f"{source}: a direction must hold floating-point numbers, not {array.dtype}")
    a = np.asarray(array, dtype=np.float64)
    while a.ndim > 1 and a.shape[0] == 1:  # [1, w_dim] and [1, num_ws, w_dim] as the files store them
        a = a[0]
    if a.ndim not in (1, 2) or a.size == 0:
        raise ValueError(f"{source}: expected a direction shaped [w_dim], [1, w_dim] or [1, num_ws, w_dim], "
                         f"got {list(array.shape)}")
    if not np.isfinite(a).all():
        raise ValueError(f"{source}: the direction contains NaN or infinite values")
    if not np.any(a):
        raise ValueError(f"{source}: the direction is all zeros")
    return a.astype(np.float32)


def load_direction(path: PathLike) -> np.ndarray:
    """Read a direction file: .npy (InterFaceGAN) or .pt/.pth (e4e); returns [w_dim] or [num_ws, w_dim].

    Nothing in the file is executed: .npy is read without pickle, .pt with torch's weights-only loader.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise ValueError(f"{path.name}: not a readable .npy array ({exc})") from exc
        return _as_direction(np.asarray(array), path.name)
    if suffix in (".pt", ".pth"):
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile) as exc:
            raise ValueError(f"{path.name}: not a tensor file torch can read safely ({exc})") from exc
        if isinstance(obj, dict):  # a {name: tensor} wrapper with a single tensor
            tensors = [v for v in obj.values() if isinstance(v, torch.Tensor)]
            if len(tensors) != 1:
                raise ValueError(f"{path.name}: expected one direction tensor, found keys {sorted(map(str, obj))}")
            obj = tensors[0]
        if not isinstance(obj, torch.Tensor):
            raise ValueError(f"{path.name}: expected a tensor, found {type(obj).__name__}")
        return _as_direction(obj.detach().float().numpy(), path.name)
    raise ValueError(f"{path.name}: direction files must be .npy (InterFaceGAN) or .pt (e4e), "
                     f"not {suffix or 'no suffix'}")


def project_out(primary: np.ndarray, conditions: Sequence[np.ndarray]) -> np.ndarray:
    """`primary` minus its projection onto the span of `conditions`, rescaled to primary's length.

    Moving along the result changes no condition's signed distance ⟨w, n_c⟩ (the result is
    orthogonal to every condition). Per-layer directions are treated row by row.
    """
    p = np.asarray(primary, dtype=np.float64)
    if not conditions:
        return p.astype(np.float32)
    try:
        shape = np.broadcast_shapes(p.shape, *(np.shape(c) for c in conditions))
    except ValueError:
        raise ValueError("the conditions do not fit the primary direction: "
                         f"{[list(np.shape(c)) for c in conditions]} vs {list(p.shape)}") from None
    p = np.broadcast_to(p, shape)
    conds = [np.broadcast_to(np.asarray(c, dtype=np.float64), shape) for c in conditions]
    rows_p = p.reshape(-1, p.shape[-1])
    rows_c = [c.reshape(-1, p.shape[-1]) for c in conds]
    out = np.empty_like(rows_p)
    for r in range(rows_p.shape[0]):
        basis = np.stack([c[r] for c in rows_c], axis=1)  # [w_dim, k]
        q, rdiag = np.linalg.qr(basis)
        keep = np.abs(np.diag(rdiag)) > 1e-8 * max(1.0, np.abs(rdiag).max())
        q = q[:, keep]
        residual = rows_p[r] - q @ (q.T @ rows_p[r])
        norm = np.linalg.norm(residual)
        if norm < 1e-8 * max(1.0, np.linalg.norm(rows_p[r])):
            raise ValueError("the primary direction lies within the span of the conditions: nothing is left "
                             "after projecting them out")
        out[r] = residual * (np.linalg.norm(rows_p[r]) / norm)
    return out.reshape(p.shape).astype(np.float32)


def parse_layers(text: Union[str, Sequence[int], None], num_ws: int, what: str = "W+ rows") -> list[int]:
    """'all', '' or None -> every row; '0-7, 12' -> those rows; checked against num_ws (`what` names them)."""
    if text is None or (isinstance(text, str) and text.strip().lower() in ("", "all", "w")):
        return list(range(num_ws))
    from stylecore.codes.latents import parse_seeds

    try:
        rows = parse_seeds(text, max_count=max(num_ws, 1))
    except ValueError as exc:
        raise ValueError(f"layers: {str(exc).replace('seed', 'layer')}") from None
    bad = [r for r in rows if r >= num_ws]
    if bad:
        raise ValueError(f"layers must be from 0 to {num_ws - 1} (this model has {num_ws} {what}), got {bad}")
    return rows


def apply_direction(ws: torch.Tensor, direction: Union[np.ndarray, torch.Tensor], strength: float,
                    layers: Optional[Sequence[int]] = None) -> torch.Tensor:
    """ws + strength * direction on the chosen W+ rows (all rows = editing in W); a new tensor.

    A per-layer direction ([num_ws, w_dim], like e4e's pose.pt) adds each row to its own W+ row.
    """
    if ws.ndim != 3:
        raise ValueError(f"ws must be [N, num_ws, w_dim], got {list(ws.shape)}")
    d = torch.as_tensor(np.asarray(direction, dtype=np.float32), device=ws.device)
    num_ws, w_dim = ws.shape[1:]
    if d.shape[-1] != w_dim:
        raise ValueError(f"the direction has {d.shape[-1]} dimensions but this model's W has {w_dim}: it was "
                         "made for another generator")
    if d.ndim == 2 and d.shape[0] != num_ws:
        raise ValueError(f"the direction has {d.shape[0]} W+ rows but this model has {num_ws}")
    rows = list(range(num_ws)) if layers is None else [int(r) for r in layers]
    if any(not 0 <= r < num_ws for r in rows):
        raise ValueError(f"layers must be from 0 to {num_ws - 1}, got {rows}")
    offset = torch.zeros([num_ws, w_dim], device=ws.device)
    offset[rows] = (d.expand(num_ws, w_dim) if d.ndim == 1 else d)[rows]
    return ws + float(strength) * offset.unsqueeze(0)
