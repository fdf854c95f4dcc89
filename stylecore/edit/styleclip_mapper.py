"""StyleCLIP latent mappers (Patashnik et al. 2021, method 2): a small network trained for one prompt
and one generator predicts a W+ offset; w' = w + 0.1·strength·M(w).

Reads the released checkpoints (`mapper/pretrained/*.pt`: 'state_dict' with `mapper.*` and the
full `decoder.*`, 'opts' a plain dict) with torch's weights-only loader. Both W+ mappers are
supported: LevelsMapper (coarse rows 0-3, medium 4-7, fine 8-17; the key is spelt `course_mapping`
in the files; a level left out adds nothing) and SingleMapper. Two quirks the trained weights
depend on are kept: the pixel norm runs over the W+ rows of each slice (dim 1), and the bias of the
fused leaky ReLU is added along the last dim. The released mappers fit StyleGAN2 FFHQ 1024 only, and
they have no Hub copy: `local_mappers` lists the ones placed in $STYLECORE_MAPPERS, so a Space or a
lab can offer them by name.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Callable, Optional, Union

import torch
import torch.nn.functional as F

from stylecore.engine.assets import fetch_file
from stylecore.formats.cache import cache_dir

__all__ = ["LatentMapper", "load_mapper", "apply_mapper", "mapper_source", "mapper_folder", "local_mappers",
           "LEVELS", "MAPPER_ROWS", "ENV_MAPPERS"]

LEVELS = (("course_mapping", 0, 4), ("medium_mapping", 4, 8), ("fine_mapping", 8, 18))
MAPPER_ROWS = 18  # StyleCLIP's mappers read W+ codes of 18 rows: StyleGAN2 at 1024 px
ENV_MAPPERS = "STYLECORE_MAPPERS"


class _RowPixelNorm(torch.nn.Module):
    """StyleCLIP's PixelNorm: normalises over dim 1 (the W+ rows of the slice), as training did."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + 1e-8)


class _EqualLinearAct(torch.nn.Module):
    """Equalised-lr linear layer with fused leaky ReLU (slope 0.2, gain √2); parameters as stored."""

    def __init__(self, dim: int, lr_mul: float = 0.01):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(dim, dim) / lr_mul)
        self.bias = torch.nn.Parameter(torch.zeros(dim))
        self.scale = lr_mul / math.sqrt(dim)
        self.lr_mul = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.weight * self.scale) + self.bias * self.lr_mul  # bias along the last dim
        return F.leaky_relu(out, 0.2) * math.sqrt(2)


class _Mapper(torch.nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.mapping = torch.nn.Sequential(_RowPixelNorm(), *[_EqualLinearAct(dim) for _ in range(4)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mapping(x)


class LatentMapper(torch.nn.Module):
    """A released StyleCLIP W+ mapper: M(w) [B, 18, 512] -> offset of the same shape."""

    def __init__(self, kind: str, levels: tuple[str, ...] = (), dim: int = 512, num_ws: int = 18,
                 description: str = ""):
        super().__init__()
        self.kind, self.levels, self.num_ws, self.dim, self.description = kind, levels, num_ws, dim, description
        if kind == "single":
            self.mapping = _Mapper(dim)
        else:
            for name in levels:
                self.add_module(name, _Mapper(dim))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        if w.ndim != 3 or w.shape[1:] != (self.num_ws, self.dim):
            raise ValueError(f"this mapper works on W+ codes [N, {self.num_ws}, {self.dim}] (StyleGAN2 1024), "
                             f"got {list(w.shape)}")
        if self.kind == "single":
            return self.mapping(w)
        parts = [getattr(self, name)(w[:, a:b]) if name in self.levels else torch.zeros_like(w[:, a:b])
                 for name, a, b in LEVELS]
        return torch.cat(parts, dim=1)


def mapper_source(spec: str, progress: Optional[Callable] = None) -> Path:
    """A mapper file: a local path, or 'hf://owner/repo/path/file.pt[@revision]' fetched via the hub cache."""
    spec = str(spec or "").strip()
    if spec.startswith("hf://"):
        rest, _, revision = spec[len("hf://"):].partition("@")
        parts = rest.split("/")
        if len(parts) < 3 or not all(parts):
            raise ValueError(f"{spec!r}: write Hub mappers as hf://owner/repo/file.pt[@revision]")
        return fetch_file("/".join(parts[:2]), "/".join(parts[2:]), revision=revision or None, progress=progress)
    if not spec:
        raise ValueError("choose a mapper checkpoint (.pt file or hf://owner/repo/file.pt)")
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"no mapper file at {spec}")
    return path


def mapper_folder() -> Path:
    """Where mapper checkpoints are looked for: $STYLECORE_MAPPERS, else 'mappers' beside the cache."""
    env = os.environ.get(ENV_MAPPERS)
    return Path(env).expanduser() if env else cache_dir().parent / "mappers"


def local_mappers(num_ws: int) -> list[Path]:
    """The mapper checkpoints (*.pt, by name) in `mapper_folder()` a generator with `num_ws` W+ rows can
    use: none unless it has StyleCLIP's 18 rows. Files are listed, not read (a released one also holds
    a whole 1024 px generator); `load_mapper` checks each when it is used."""
    folder = mapper_folder()
    if num_ws != MAPPER_ROWS or not folder.is_dir():
        return []
    return sorted(path for path in folder.glob("*.pt") if path.is_file())


def load_mapper(path: Union[str, Path], device: Union[str, torch.device] = "cpu") -> LatentMapper:
    """Read a released mapper checkpoint (weights-only unpickling: no code from the file runs)."""
    try:
        ckpt: Any = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's input problem
        raise ValueError(f"{path}: not a readable StyleCLIP mapper checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise ValueError(f"{path}: a StyleCLIP mapper checkpoint is a dict with 'state_dict' and 'opts'")
    opts = ckpt.get("opts") if isinstance(ckpt.get("opts"), dict) else {}
    if opts.get("work_in_stylespace"):
        raise ValueError(f"{path}: StyleSpace mappers (work_in_stylespace) are not supported, only W+ mappers")
    state = {k[len("mapper."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("mapper.")}
    if not state:
        raise ValueError(f"{path}: no 'mapper.*' weights in the checkpoint")
    heads = {k.split(".")[0] for k in state}
    weight = next(v for k, v in state.items() if k.endswith("weight"))
    dim = int(weight.shape[-1])
    if heads <= {name for name, _, _ in LEVELS}:
        order = tuple(name for name, _, _ in LEVELS if name in heads)
        mapper = LatentMapper("levels", order, dim, description=str(opts.get("description", "")))
        for name, flag in zip(("course_mapping", "medium_mapping", "fine_mapping"),
                              ("no_coarse_mapper", "no_medium_mapper", "no_fine_mapper")):
            if opts.get(flag) and name in heads:
                raise ValueError(f"{path}: opts say {flag} but the file holds {name} weights")
    elif heads == {"mapping"}:
        mapper = LatentMapper("single", (), dim, description=str(opts.get("description", "")))
    else:
        raise ValueError(f"{path}: unknown mapper layout (modules {sorted(heads)})")
    try:
        mapper.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{path}: mapper weights do not fit ({str(exc).splitlines()[0]})") from None
    return mapper.to(device).eval().requires_grad_(False)


@torch.no_grad()
def apply_mapper(mapper: LatentMapper, ws: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
    """w' = w + 0.1·strength·M(w) (strength 1 is the released behaviour, 0 the identity)."""
    if strength == 0:
        return ws
    return ws + 0.1 * float(strength) * mapper(ws.to(next(mapper.parameters()).device).float()).to(ws.device)
