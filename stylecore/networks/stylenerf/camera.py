"""StyleNeRF's camera: intrinsics, look-at poses on a sphere, the ray pixel grid and the
NeRF++ inverse-sphere mapping of background points.

Conventions (reference/encoders_clip_nerf.md C.3, fixtures README-stylenerf.md): the image plane
spans [-1, 1] at camera depth -1 (the camera looks along its -z, OpenGL style); yaw u turns about
+z, pitch v is the polar angle from +z; `camera_RT` is camera-to-world. Angles arrive normalised
to [0, 1] over the checkpoint's ranges (`mode=[u, v, r]`), as the original `get_camera` takes them.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
import torch

Number = Union[float, int]

__all__ = ["CameraRay", "camera_K_inv", "lookat_RT", "ray_pixels", "rays_world", "depth2pts_outside",
           "slider_to_uv"]


def _per_sample(value: Any, batch_size: int, device: Union[str, torch.device]) -> torch.Tensor:
    """A float64 [B] tensor on `device`; scalars are filled there (no host-to-device copy)."""
    if isinstance(value, torch.Tensor):
        return value.to(device=device, dtype=torch.float64).reshape(-1).expand(batch_size)
    if isinstance(value, (int, float, np.number)):
        return torch.full([batch_size], float(value), dtype=torch.float64, device=device)
    return torch.as_tensor(np.asarray(value, dtype=np.float64), device=device).reshape(-1).expand(batch_size)


def camera_K_inv(fov_degrees: Any, batch_size: int, device: Union[str, torch.device] = "cpu") -> torch.Tensor:
    """Inverse intrinsics [B, 4, 4] for a field of view in degrees: diag(1/f, 1/f, 1, 1), f = 1/tan(fov/2)."""
    fov = _per_sample(fov_degrees, batch_size, device)
    focal = (1.0 / torch.tan(torch.deg2rad(fov) / 2)).to(torch.float32)
    inv = 1.0 / focal
    ones = torch.ones_like(inv)
    return torch.diag_embed(torch.stack([inv, inv, ones, ones], dim=-1))


def lookat_RT(yaw: Any, polar: Any, radius: Any, device: Union[str, torch.device, None] = None) -> torch.Tensor:
    """Camera-to-world [B, 4, 4] for cameras at (yaw, polar angle, radius) looking at the origin, up = +z.

    The location is computed in float64 and rounded to float32; the axes in float32 (as the original).
    """
    tensors = [t for t in (yaw, polar, radius) if isinstance(t, torch.Tensor)]
    device = device if device is not None else (tensors[0].device if tensors else "cpu")
    batch_size = max(int(np.size(t)) if not isinstance(t, torch.Tensor) else t.numel() for t in (yaw, polar, radius))
    yaw, polar, radius = (_per_sample(t, batch_size, device) for t in (yaw, polar, radius))
    loc = torch.stack([torch.sin(polar) * torch.cos(yaw), torch.sin(polar) * torch.sin(yaw), torch.cos(polar)], -1)
    loc = (loc * radius.unsqueeze(-1)).to(torch.float32)

    def unit(v: torch.Tensor) -> torch.Tensor:
        return v / torch.linalg.vector_norm(v, dim=-1, keepdim=True)

    z_axis = unit(loc)
    up = torch.zeros_like(z_axis)
    up[:, 2] = 1.0
    x_axis = unit(torch.cross(up, z_axis, dim=-1))
    y_axis = unit(torch.cross(z_axis, x_axis, dim=-1))
    top = torch.stack([x_axis, y_axis, z_axis, loc], dim=-1)  # [B, 3, 4]
    bottom = torch.zeros_like(top[:, :1])
    bottom[:, 0, 3] = 1.0
    return torch.cat([top, bottom], dim=1)


def slider_to_uv(yaw: float, pitch: float, range_u: Sequence[float], range_v: Sequence[float]) -> tuple[float, float]:
    """The web demo's sliders (yaw, pitch in [-1, 1]) -> normalised (u, v): yaw 0.5 rad, pitch 0.3 rad per unit."""
    yaw_rad = 0.5 * yaw
    pitch_rad = math.pi / 2 + 0.3 * pitch
    u = (yaw_rad - range_u[0]) / (range_u[1] - range_u[0])
    v = (pitch_rad - range_v[0]) / (range_v[1] - range_v[0])
    return u, v


def ray_pixels(resolution_vol: int, img_resolution: int, align_corner: bool, theta: Union[Number, torch.Tensor] = 0.0,
               device: Union[str, torch.device] = "cpu") -> torch.Tensor:
    """Image-plane (x, y) of the volume-rendering rays, [H*W, 2] row-major with row 0 at the top (+y).

    Pixel centres of a `resolution_vol` grid, or (`align_corner`) a corner-aligned grid at the full
    output resolution sampled nearest-neighbour down to `resolution_vol`. A roll `theta` (radians,
    a number or a [B] tensor, which gives [B, H*W, 2]) rotates the coordinates.
    """
    n = resolution_vol
    if align_corner:
        full = torch.linspace(-1.0, 1.0, img_resolution, dtype=torch.float32, device=device)
        idx = torch.div(torch.arange(n, device=device) * img_resolution, n, rounding_mode="floor")
        axis = full[idx]
    else:
        axis = torch.linspace(-(1 - 1 / n), 1 - 1 / n, n, dtype=torch.float32, device=device)
    ys, xs = torch.meshgrid(-axis, axis, indexing="ij")
    pixels = torch.stack([xs.reshape(-1), ys.reshape(-1)], -1)
    if isinstance(theta, torch.Tensor) and theta.ndim > 0:
        t = theta.to(device=device, dtype=torch.float32).reshape(-1, 1)
        c, s = torch.cos(t), torch.sin(t)
        x, y = pixels[None, :, 0], pixels[None, :, 1]
        return torch.stack([x * c - y * s, x * s + y * c], -1)
    t = float(theta)
    if t == 0.0:
        return pixels
    c, s = math.cos(t), math.sin(t)
    x, y = pixels[:, 0], pixels[:, 1]
    return torch.stack([x * c - y * s, x * s + y * c], -1)


def rays_world(K_inv: torch.Tensor, RT: torch.Tensor, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(origin [B, 1, 3], pixels in world space [B, N, 3]) for image-plane pixels [N, 2] or [B, N, 2]."""
    B = RT.shape[0]
    if pixels.ndim == 2:
        pixels = pixels.unsqueeze(0).expand(B, -1, -1)
    ones = torch.ones_like(pixels[..., :1])
    homog = torch.cat([pixels, -ones, ones], -1)  # image plane at camera depth -1
    world = torch.matmul(torch.matmul(RT, K_inv), homog.transpose(1, 2)).transpose(1, 2)
    return RT[:, None, :3, 3], world[..., :3]


def depth2pts_outside(ray_o: torch.Tensor, ray_d: torch.Tensor, inv_depth: torch.Tensor) -> torch.Tensor:
    """NeRF++ background parameterisation: points outside the unit sphere as (unit-sphere point, 1/r).

    `ray_o`, `ray_d` [..., 3] (broadcast against `inv_depth` [...]). The ray's exit point on the
    unit sphere is rotated towards the ray's closest approach so that its angle matches a sphere
    of radius 1/inv_depth; returns [..., 4].
    """
    d1 = -(ray_d * ray_o).sum(-1) / (ray_d * ray_d).sum(-1)
    p_mid = ray_o + d1.unsqueeze(-1) * ray_d
    p_mid_norm = p_mid.norm(dim=-1)
    ray_d_cos = 1.0 / ray_d.norm(dim=-1)
    d2 = torch.sqrt(1.0 - p_mid_norm * p_mid_norm) * ray_d_cos
    p_sphere = ray_o + (d1 + d2).unsqueeze(-1) * ray_d

    axis = torch.cross(ray_o.expand_as(p_sphere), p_sphere, dim=-1)
    axis = axis / axis.norm(dim=-1, keepdim=True)
    phi = torch.asin(p_mid_norm)
    theta = torch.asin(p_mid_norm * inv_depth)
    angle = (phi - theta).unsqueeze(-1)
    # Rodrigues' rotation of p_sphere about `axis` by `angle`.
    cos, sin = torch.cos(angle), torch.sin(angle)
    rotated = (p_sphere * cos + torch.cross(axis, p_sphere, dim=-1) * sin
               + axis * (axis * p_sphere).sum(-1, keepdim=True) * (1.0 - cos))
    rotated = rotated / rotated.norm(dim=-1, keepdim=True)
    return torch.cat([rotated, inv_depth.unsqueeze(-1).expand_as(rotated[..., :1])], -1)


class CameraRay:
    """`synthesis.C`: the camera configuration of a checkpoint (ranges, fov, depths, pixel grid).

    A plain object, as in the original, where it is a persistent non-Module class whose state is
    configuration only.
    """

    range_u: Sequence[float] = (-0.3, 0.3)
    range_v: Sequence[float] = (math.pi / 2 - 0.155, math.pi / 2 + 0.155)
    range_radius: Sequence[float] = (1.0, 1.0)
    depth_range: Sequence[float] = (0.88, 1.12)
    fov: float = 12.0
    bg_start: float = 0.5
    ray_align_corner: bool = False
    dists_normalized: bool = False
    angular_camera: bool = True
    gaussian_camera: bool = True
    depth_transform: Optional[str] = None

    def __init__(self, camera_kwargs: Optional[Mapping[str, Any]] = None):
        for key, value in dict(camera_kwargs or {}).items():
            if hasattr(type(self), key):
                setattr(self, key, value)
        if not self.angular_camera:
            raise ValueError("only angular cameras (angular_camera=True) are supported")
        if self.depth_transform not in (None, "none"):
            raise ValueError(f"camera depth_transform {self.depth_transform!r} is not supported")
        if self.dists_normalized:
            raise ValueError("dists_normalized=True is not supported (the released checkpoints use False)")

    def angles(self, u: torch.Tensor, v: torch.Tensor, r: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Normalised (u, v, r) in [0, 1] -> (yaw, polar angle, radius)."""
        lerp = lambda rng, t: float(rng[0]) + t * (float(rng[1]) - float(rng[0]))  # noqa: E731
        return lerp(self.range_u, u), lerp(self.range_v, v), lerp(self.range_radius, r)

    def get_camera(self, batch_size: int, mode: Sequence[Any], device: Union[str, torch.device] = "cpu",
                   fov: Optional[Any] = None) -> tuple[torch.Tensor, torch.Tensor, Any, None]:
        """(K_inv, RT, mode, None) for normalised `mode = [u, v, r]` (numbers, per-sample lists or
        tensors). Numbers and device tensors are computed on `device` without host copies."""
        if len(mode) != 3:
            raise ValueError(f"camera mode must be [u, v, radius], got {mode!r}")
        u, v, r = (_per_sample(m, batch_size, device) for m in mode)
        yaw, polar, radius = self.angles(u, v, r)
        K_inv = camera_K_inv(self.fov if fov is None else fov, batch_size, device)
        return K_inv, lookat_RT(yaw, polar, radius, device), mode, None
