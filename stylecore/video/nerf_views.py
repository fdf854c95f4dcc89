"""StyleNeRF views: render a face from a chosen camera, mix geometry and appearance of two seeds,
and fly the camera around it into an MP4.

Follows the StyleNeRF web demo (reference/encoders_clip_nerf.md C.3): sliders yaw and pitch in
[-1, 1] (0.5 and 0.3 radians per unit), field of view in degrees, z from
`RandomState(seed).randn`, the background code seeded with the sum of the seeds, the background
rendered from a fixed camera (`freeze_bg`) and `steps:N` samples per ray. The background seed
uses a private generator, so concurrent requests never disturb each other or the global RNG.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Generator, Optional, Sequence, Union

import numpy as np
import torch

from stylecore.codes.generate import to_uint8
from stylecore.codes.latents import seeds_to_ws
from stylecore.networks.stylenerf.camera import slider_to_uv
from stylecore.progress import Cancelled, Progress, ShouldStop, report, stop_requested

GEOMETRY_WS = 8  # the demo's split: ws[:, :8] shape the geometry, the rest the appearance
BG_TEMPERATURE = 0.65  # the demo's scale of the background code (its Renderer's `tmp`)
MAX_STEPS = 128
MAX_ORBIT_FRAMES = 240


def is_stylenerf(G: torch.nn.Module) -> bool:
    """True for StyleNeRF generators, the only ones with a 3-D camera."""
    return G.architecture == "stylenerf"


@dataclass(frozen=True)
class ViewSettings:
    """One view: camera sliders as in the web demo, sampling and latent settings."""

    yaw: float = 0.0  # -1 .. 1 (0.5 rad per unit)
    pitch: float = 0.0  # -1 .. 1 (0.3 rad per unit)
    roll: float = 0.0  # -1 .. 1 (pi rad per unit)
    fov: float = 12.0  # degrees
    steps: int = 40  # samples per ray, coarse and again fine
    truncation_psi: float = 0.7
    mix_geometry: float = 1.0  # share of the geometry seed in ws[:, :8]
    mix_appearance: float = 0.0  # share of the geometry seed in ws[:, 8:]
    freeze_bg: bool = True
    bg_temperature: float = BG_TEMPERATURE

    def validate(self) -> None:
        checks = (("yaw", self.yaw, -1.5, 1.5), ("pitch", self.pitch, -1.5, 1.5), ("roll", self.roll, -1.0, 1.0),
                  ("field of view", self.fov, 1.0, 60.0), ("truncation psi", self.truncation_psi, -2.0, 2.0),
                  ("geometry mix", self.mix_geometry, 0.0, 1.0), ("appearance mix", self.mix_appearance, 0.0, 1.0),
                  ("background temperature", self.bg_temperature, 0.0, 2.0))
        for name, value, lo, hi in checks:
            if not isinstance(value, (int, float)) or not math.isfinite(value) or not lo <= value <= hi:
                raise ValueError(f"{name} must be a number from {lo:g} to {hi:g}, got {value!r}")
        if int(self.steps) != self.steps or not 2 <= self.steps <= MAX_STEPS:
            raise ValueError(f"samples per ray must be a whole number from 2 to {MAX_STEPS}, got {self.steps!r}")

    @property
    def render_option(self) -> str:
        return ("freeze_bg," if self.freeze_bg else "") + f"steps:{int(self.steps)}"


def _device(G: torch.nn.Module) -> torch.device:
    return next(G.parameters()).device


def _require_stylenerf(G: torch.nn.Module) -> None:
    if not is_stylenerf(G):
        raise ValueError("this model has no 3-D camera: pick a StyleNeRF model (e.g. 'demo-nerf' or "
                         "'stylenerf-ffhq-256')")


def mix_ws(ws_geometry: torch.Tensor, ws_appearance: torch.Tensor, mix_geometry: float = 1.0,
           mix_appearance: float = 0.0, split: int = GEOMETRY_WS) -> torch.Tensor:
    """The demo's mixing: ws[:, :split] = g*m1 + a*(1-m1), ws[:, split:] = g*m2 + a*(1-m2)."""
    head = ws_geometry[:, :split] * mix_geometry + ws_appearance[:, :split] * (1 - mix_geometry)
    tail = ws_geometry[:, split:] * mix_appearance + ws_appearance[:, split:] * (1 - mix_appearance)
    return torch.cat([head, tail], dim=1)


@torch.no_grad()
def view_ws(G: torch.nn.Module, geometry_seed: int, appearance_seed: Optional[int],
            settings: ViewSettings) -> torch.Tensor:
    """ws [1, num_ws, w_dim] for a seed, or for a geometry seed mixed with an appearance seed."""
    device = _device(G)
    seeds = [geometry_seed] if appearance_seed is None else [geometry_seed, appearance_seed]
    ws = seeds_to_ws(G, seeds, settings.truncation_psi, device=device)
    if appearance_seed is None:
        return ws
    return mix_ws(ws[:1], ws[1:], settings.mix_geometry, settings.mix_appearance)


def view_camera(G: torch.nn.Module, settings: ViewSettings, batch_size: int = 1) -> tuple:
    """Camera matrices for the sliders of `settings` (the demo's slider-to-angle mapping)."""
    C = G.synthesis.C
    u, v = slider_to_uv(settings.yaw, settings.pitch, C.range_u, C.range_v)
    return G.synthesis.get_camera(batch_size, [u, v, 0.5], device=_device(G), fov=settings.fov)


def background_codes(G: torch.nn.Module, seed: int, temperature: float = BG_TEMPERATURE) -> tuple:
    """The background latents the demo draws after `torch.manual_seed(seed)`, from a private generator."""
    generator = torch.Generator().manual_seed(int(seed))
    return G.synthesis.get_latent_codes(1, _device(G), tmp=temperature, generator=generator)


@torch.no_grad()
def render_ws(G: torch.nn.Module, ws: torch.Tensor, settings: ViewSettings, codes: Sequence[torch.Tensor],
              force_fp32: bool = True) -> np.ndarray:
    """uint8 HWC image of `ws` seen from the camera of `settings`."""
    img = G.synthesis(ws, camera_matrices=view_camera(G, settings, ws.shape[0]), theta=settings.roll * math.pi,
                      latent_codes=codes, render_option=settings.render_option, force_fp32=force_fp32)
    return to_uint8(img)[0]


def render_view(G: torch.nn.Module, geometry_seed: int, appearance_seed: Optional[int] = None,
                settings: ViewSettings = ViewSettings(), force_fp32: bool = True,
                bg_seed: Optional[int] = None) -> np.ndarray:
    """One view of a seed (or geometry seed + appearance seed) as a uint8 HWC image.

    The background code is seeded with `bg_seed`, by default the sum of the seeds (as the demo does).
    """
    _require_stylenerf(G)
    settings.validate()
    ws = view_ws(G, geometry_seed, appearance_seed, settings)
    seed = geometry_seed + (appearance_seed or 0) if bg_seed is None else bg_seed
    return render_ws(G, ws, settings, background_codes(G, seed, settings.bg_temperature), force_fp32)


def orbit_poses(frames: int, yaw_range: float = 1.0, pitch_range: float = 0.3,
                base: ViewSettings = ViewSettings()) -> list[ViewSettings]:
    """A closed loop around the face: yaw follows a sine around the front, pitch a cosine around
    the base view's pitch (slider units)."""
    if int(frames) != frames or not 2 <= frames <= MAX_ORBIT_FRAMES:
        raise ValueError(f"an orbit needs a whole number of frames from 2 to {MAX_ORBIT_FRAMES}, got {frames!r}")
    if not (0 <= yaw_range <= 1.5 and 0 <= pitch_range <= 1.5):
        raise ValueError("orbit ranges must be from 0 to 1.5 slider units")
    out = []
    for k in range(int(frames)):
        t = 2 * math.pi * k / frames
        pitch = min(max(base.pitch + pitch_range * math.cos(t), -1.5), 1.5)
        out.append(replace(base, yaw=yaw_range * math.sin(t), pitch=pitch))
    return out


def render_orbit_steps(G: torch.nn.Module, out_path: Union[str, Path], geometry_seed: int,
                       appearance_seed: Optional[int] = None, settings: ViewSettings = ViewSettings(),
                       frames: int = 48, fps: float = 24.0, yaw_range: float = 1.0, pitch_range: float = 0.3,
                       force_fp32: bool = True, cancel: ShouldStop = None,
                       bg_seed: Optional[int] = None) -> Generator[tuple[float, str], None, Path]:
    """Render an orbit around one face to a browser-playable MP4 (H.264, yuv420p), frame by frame,
    yielding (fraction, message) after each frame; returns the path.

    The file appears only when complete: closing the generator (Gradio's Stop) or setting
    `cancel` stops at the next frame and leaves nothing behind (`cancel` raises stylecore.progress.Cancelled).
    """
    from stylecore.video.writer import check_free_space, estimated_bytes, mp4_steps

    _require_stylenerf(G)
    settings.validate()
    if not isinstance(fps, (int, float)) or not math.isfinite(fps) or not 1 <= fps <= 60:
        raise ValueError(f"fps must be from 1 to 60, got {fps!r}")
    poses = orbit_poses(frames, yaw_range, pitch_range, settings)
    out_path = Path(out_path)
    if out_path.suffix.lower() != ".mp4":
        raise ValueError(f"the orbit is written as MP4: name it *.mp4, not {out_path.name}")
    res = int(G.img_resolution)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    check_free_space(out_path.parent, estimated_bytes(res, res, len(poses)))
    ws = view_ws(G, geometry_seed, appearance_seed, settings)
    seed = geometry_seed + (appearance_seed or 0) if bg_seed is None else bg_seed
    codes = background_codes(G, seed, settings.bg_temperature)
    if stop_requested(cancel):
        raise Cancelled("orbit video cancelled before it started")
    images = (render_ws(G, ws, pose, codes, force_fp32) for pose in poses)
    return (yield from mp4_steps(out_path, images, len(poses), fps, cancel))


def render_orbit(G: torch.nn.Module, out_path: Union[str, Path], geometry_seed: int,
                 appearance_seed: Optional[int] = None, settings: ViewSettings = ViewSettings(),
                 frames: int = 48, fps: float = 24.0, yaw_range: float = 1.0, pitch_range: float = 0.3,
                 force_fp32: bool = True, progress: Progress = None, cancel: ShouldStop = None,
                 bg_seed: Optional[int] = None) -> Path:
    """`render_orbit_steps` run to the end, reporting progress through `progress(fraction, message)`."""
    steps = render_orbit_steps(G, out_path, geometry_seed, appearance_seed, settings, frames, fps, yaw_range,
                               pitch_range, force_fp32, cancel, bg_seed)
    while True:
        try:
            report(progress, *next(steps))
        except StopIteration as done:
            return done.value
