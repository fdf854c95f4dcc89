"""Where a video goes: keyframe walks through latent codes and StyleGAN3 camera paths.

A walk is evaluated lazily, a batch of frame indices at a time, so long videos and big grids
never hold every frame's code in memory. Cubic and linear walks are fixed linear combinations
of the keyframes (a [frames, keys] weight matrix), so they work on codes of any shape; the
spherical walk blends each pair of neighbouring keys along the great circle.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from stylecore.codes.generate import make_transform

KINDS = ("cubic", "linear", "spherical")
CAMERA_PATHS = ("none", "circle", "line", "rotate", "circle+rotate")
WRAPS = 2  # keyframes tiled this many times on each side, as gen_video.py does for its looping spline


def num_frames(num_keys: int, frames_per_transition: int, loop: bool) -> int:
    """Frames of a walk: a loop returns to the first key, an open walk ends on the last key."""
    if num_keys == 1 or loop:
        return num_keys * frames_per_transition
    return (num_keys - 1) * frames_per_transition + 1


def _cubic_basis(num_keys: int, loop: bool):
    """A spline through unit vectors: evaluating it gives each key's weight at any time."""
    from scipy.interpolate import make_interp_spline

    if loop:  # gen_video.py: keys tiled WRAPS times each side, a not-a-knot cubic through all of them
        x = np.arange(-num_keys * WRAPS, num_keys * (WRAPS + 1))
        y = np.tile(np.eye(num_keys), (2 * WRAPS + 1, 1))
        return make_interp_spline(x, y, k=3, axis=0)
    x = np.arange(num_keys)
    return make_interp_spline(x, np.eye(num_keys), k=min(3, num_keys - 1), axis=0)


def _slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical blend along the last axis; falls back to a straight line for (anti)parallel vectors."""
    an = a / a.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    bn = b / b.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    omega = torch.acos((an * bn).sum(-1, keepdim=True).clamp(-1.0, 1.0))
    sin = torch.sin(omega)
    safe = sin.abs() > 1e-6
    wa = torch.where(safe, torch.sin((1 - t) * omega) / torch.where(safe, sin, 1.0), 1 - t)
    wb = torch.where(safe, torch.sin(t * omega) / torch.where(safe, sin, 1.0), t)
    return wa * a + wb * b


@dataclass
class KeyframeWalk:
    """A walk through `keys` [cells, K, ...] (one row of keyframes per grid cell).

    `center` is the point spherical interpolation turns around: the origin for z, the model's
    w_avg for w (so the walk keeps its distance from the average face instead of the origin).
    """

    keys: torch.Tensor
    kind: str = "cubic"
    frames_per_transition: int = 60
    loop: bool = True
    center: Optional[torch.Tensor] = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"interpolation must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.keys.ndim < 3 or self.keys.shape[1] < 1:
            raise ValueError("a walk needs keys shaped [cells, keyframes, ...] with at least one keyframe")
        if int(self.frames_per_transition) < 1:
            raise ValueError(f"frames per transition must be at least 1, got {self.frames_per_transition}")
        self._basis = _cubic_basis(self.num_keys, self.loop) if self.kind == "cubic" and self.num_keys > 1 else None

    @property
    def num_keys(self) -> int:
        return int(self.keys.shape[1])

    @property
    def num_frames(self) -> int:
        return num_frames(self.num_keys, self.frames_per_transition, self.loop)

    def times(self, frames: Sequence[int]) -> np.ndarray:
        """Frame indices -> positions in keyframe units (frame T of a loop is key 0 again)."""
        t = np.asarray(frames, dtype=np.float64) / self.frames_per_transition
        return np.mod(t, self.num_keys) if self.loop else np.minimum(t, self.num_keys - 1)

    def __call__(self, frames: Sequence[int]) -> torch.Tensor:
        """Codes for a batch of frame indices: [len(frames), cells, ...]."""
        keys = self.keys
        if self.num_keys == 1:
            return keys[:, 0].unsqueeze(0).expand(len(frames), *keys[:, 0].shape).clone()
        t = self.times(frames)
        if self.kind == "cubic":
            weights = self._basis(t)  # [B, K]
            w = torch.from_numpy(weights).to(device=keys.device, dtype=keys.dtype)
            return torch.einsum("bk,ck...->bc...", w, keys)
        a = np.floor(t).astype(np.int64) % self.num_keys
        b = (a + 1) % self.num_keys if self.loop else np.minimum(a + 1, self.num_keys - 1)
        frac = torch.from_numpy(t - np.floor(t)).to(device=keys.device, dtype=keys.dtype)
        frac = frac.view(-1, *([1] * (keys.ndim - 1)))  # [B, 1, ...]
        ka = keys[:, torch.from_numpy(a).to(keys.device)].transpose(0, 1)  # [B, cells, ...]
        kb = keys[:, torch.from_numpy(b).to(keys.device)].transpose(0, 1)
        if self.kind == "linear":
            return ka + frac * (kb - ka)
        center = torch.zeros((), device=keys.device, dtype=keys.dtype) if self.center is None else self.center
        return _slerp(ka - center, kb - center, frac) + center


@dataclass(frozen=True)
class CameraPath:
    """A StyleGAN3 camera move over the whole video, closing on itself so loops stay seamless.

    circle: the view circles `radius` image widths around the base translation; line: it swings
    along x by `radius` and back; rotate: `turns` full turns (negative = clockwise); circle+rotate:
    both. The base translation and rotation (the generation tab's translate/rotate) apply throughout.
    """

    kind: str = "none"
    radius: float = 0.1
    turns: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in CAMERA_PATHS:
            raise ValueError(f"camera path must be one of {', '.join(CAMERA_PATHS)}, got {self.kind!r}")
        if not all(math.isfinite(float(v)) for v in (self.radius, self.turns)):
            raise ValueError("camera radius and turns must be finite numbers")
        if not 0 <= self.radius <= 2:
            raise ValueError(f"camera radius must be from 0 to 2 image widths, got {self.radius}")
        if abs(self.turns) > 100:
            raise ValueError(f"rotation must be within 100 turns per video, got {self.turns}")

    @property
    def moves(self) -> bool:
        return self.kind != "none"

    def pose(self, phase: float, base: tuple[float, float] = (0.0, 0.0),
             base_degrees: float = 0.0) -> tuple[tuple[float, float], float]:
        """(translate, degrees) at `phase` in [0, 1) of the video."""
        a = 2 * math.pi * phase
        tx, ty = base
        if self.kind in ("circle", "circle+rotate"):
            tx, ty = tx + self.radius * math.cos(a), ty + self.radius * math.sin(a)
        elif self.kind == "line":
            tx = tx + self.radius * math.sin(a)
        spin = 360.0 * self.turns * phase if self.kind in ("rotate", "circle+rotate") else 0.0
        return (tx, ty), base_degrees + spin

    def transforms(self, frames: Sequence[int], total: int, base: tuple[float, float] = (0.0, 0.0),
                   base_degrees: float = 0.0) -> np.ndarray:
        """[len(frames), 3, 3] matrices for synthesis(transform=...), one per frame."""
        return np.stack([make_transform(*self.pose(i / total, base, base_degrees)) for i in frames])
