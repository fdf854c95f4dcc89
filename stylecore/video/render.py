"""Videos: latent walks through keyframes, StyleGAN3 camera moves, and StyleGAN2 vs StyleGAN3
side by side (where StyleGAN2's texture sticking shows).

The walk follows gen_video.py of the StyleGAN3 release (seeds -> z -> w with truncation, a looping
cubic spline in W, noise_mode 'const'), adds linear and spherical walks, walks in z, uploaded
codes and camera paths, and renders in batches into an MP4 that appears only when complete.
Limits are checked before any work so a request fails with a message, not an exhausted machine.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generator, Iterator, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

from stylecore.codes.generate import GenerationSettings, is_stylegan3, settings_ws, to_uint8
from stylecore.codes.latents import class_labels, load_latents, z_from_seeds
from stylecore.video.paths import CameraPath, KeyframeWalk, num_frames
from stylecore.progress import Cancelled, Progress, ShouldStop, report, stop_requested
from stylecore.video.writer import Mp4Writer, check_free_space, estimated_bytes, mp4_to_gif

SPACES = ("w", "z")

def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {text!r}") from None
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return value


@dataclass(frozen=True)
class VideoLimits:
    """What one request may ask for; sized for a free 2-core CPU Space, raised with env variables."""

    max_frames: int = 1200  # 20 s at 60 fps
    max_side: int = 1024  # pixels per side of the whole frame (grid and side by side included)
    max_cells: int = 16  # walks in the grid, e.g. 4 x 4
    max_keyframes: int = 256  # per walk
    gif_max_side: int = 512

    @classmethod
    def from_env(cls) -> "VideoLimits":
        """STYLECORE_VIDEO_MAX_FRAMES, _MAX_SIDE, _MAX_CELLS, _MAX_KEYFRAMES, _GIF_MAX_SIDE override the defaults."""
        d = cls()
        return cls(**{name: _env_int(f"STYLECORE_VIDEO_{name.upper()}", getattr(d, name))
                      for name in ("max_frames", "max_side", "max_cells", "max_keyframes", "gif_max_side")})


@dataclass(frozen=True)
class VideoSettings:
    """One video request. Keyframes are seeds (grid_w * grid_h * K of them, one row of K per cell,
    as gen_video.py takes them) or W/W+ codes from an .npz file (walked in w, never truncated)."""

    seeds: tuple[int, ...] = (0, 1, 2)
    codes_path: Optional[str] = None
    kind: str = "cubic"
    space: str = "w"
    loop: bool = True
    frames_per_transition: int = 60
    grid: tuple[int, int] = (1, 1)  # (columns, rows)
    fps: float = 30.0
    camera: CameraPath = field(default_factory=CameraPath)
    generation: GenerationSettings = GenerationSettings()  # psi, cutoff, noise mode, class
    gif: bool = False


@dataclass
class Panel:
    """One model rendering the walk; several panels are laid side by side, left to right."""

    G: torch.nn.Module
    force_fp32: bool = True
    label: str = ""


Models = Union[torch.nn.Module, Panel, Sequence[Union[torch.nn.Module, Panel]]]


@dataclass(frozen=True)
class VideoPlan:
    """Sizes and counts, known before any frame is rendered."""

    frames: int
    keyframes: int
    cell_size: tuple[int, int]  # (width, height) of one walk's image
    size: tuple[int, int]  # (width, height) of the whole frame
    gap: int  # black pixels between side-by-side panels
    fps: float

    @property
    def seconds(self) -> float:
        return self.frames / self.fps


@dataclass
class VideoResult:
    path: Path
    gif_path: Optional[Path]
    plan: VideoPlan
    render_seconds: float

    @property
    def frames_per_second(self) -> float:
        """Rendering speed (synthesis and encoding), not the playback rate."""
        return self.plan.frames / max(self.render_seconds, 1e-9)


def _as_panels(models: Models) -> list[Panel]:
    items = [models] if isinstance(models, (torch.nn.Module, Panel)) else list(models)
    return [m if isinstance(m, Panel) else Panel(m) for m in items]


def _keyframe_count(settings: VideoSettings, panels: Sequence[Panel], limits: VideoLimits) -> int:
    cells = settings.grid[0] * settings.grid[1]
    if settings.codes_path is not None:
        if settings.space != "w":
            raise ValueError("uploaded codes are W/W+ codes: walk them in w, not z")
        counts = {int(load_latents(settings.codes_path, p.G.num_ws, p.G.w_dim).shape[0]) for p in panels}
        count, what = counts.pop(), "codes in the file"  # loaded for every panel: each must fit the codes
    else:
        count, what = len(settings.seeds), "seeds"
    if count == 0 or count % cells:
        raise ValueError(f"a {settings.grid[0]}x{settings.grid[1]} grid needs a multiple of {cells} keyframes "
                         f"({cells} walks with the same number of keyframes each), got {count} {what}")
    keys = count // cells
    if keys > limits.max_keyframes:
        raise ValueError(f"{keys} keyframes per walk is more than the limit of {limits.max_keyframes}")
    return keys


def plan_video(models: Models, settings: VideoSettings, limits: Optional[VideoLimits] = None) -> VideoPlan:
    """Validate a request against the models and the limits; nothing is rendered."""
    panels = _as_panels(models)
    limits = limits or VideoLimits.from_env()
    if not panels:
        raise ValueError("no model to render")
    gw, gh = (int(v) for v in settings.grid)
    if gw < 1 or gh < 1:
        raise ValueError(f"the grid needs at least 1 column and 1 row, got {gw}x{gh}")
    if gw * gh > limits.max_cells:
        raise ValueError(f"a {gw}x{gh} grid has {gw * gh} walks; at most {limits.max_cells} "
                         f"(STYLECORE_VIDEO_MAX_CELLS)")
    if settings.kind not in ("cubic", "linear", "spherical"):
        raise ValueError(f"interpolation must be cubic, linear or spherical, got {settings.kind!r}")
    if settings.space not in SPACES:
        raise ValueError(f"the walk's space must be 'w' or 'z', got {settings.space!r}")
    if not math.isfinite(settings.fps) or not 1 <= settings.fps <= 120:
        raise ValueError(f"fps must be from 1 to 120, got {settings.fps}")
    fpt = settings.frames_per_transition
    if int(fpt) != fpt or not 1 <= fpt <= limits.max_frames:
        raise ValueError(f"frames per transition must be a whole number from 1 to {limits.max_frames}, got {fpt}")
    gen = settings.generation
    transformed = settings.camera.moves or gen.translate != (0.0, 0.0) or gen.rotate_degrees != 0
    for panel in panels:
        gen.validate(panel.G)
    if transformed and not any(is_stylegan3(p.G) for p in panels):  # side by side: StyleGAN2 panels stay still
        raise ValueError(f"camera paths move StyleGAN3's input grid; {panels[-1].label or 'the model'} is StyleGAN2: "
                         "pick a StyleGAN3 model, or turn off the camera path")
    if settings.space == "z" and len({p.G.z_dim for p in panels}) > 1:
        raise ValueError("walking in z side by side needs models with the same z size; walk in w instead")
    keys = _keyframe_count(settings, panels, limits)
    frames = num_frames(keys, int(fpt), settings.loop)
    if frames > limits.max_frames:
        raise ValueError(f"{frames} frames is more than the limit of {limits.max_frames} (STYLECORE_VIDEO_MAX_FRAMES): "
                         "use fewer keyframes or frames per transition")
    res = max(int(p.G.img_resolution) for p in panels)
    cell = (res, res)
    gap = 0 if len(panels) == 1 else max(2, res // 32) // 2 * 2
    width = len(panels) * gw * res + (len(panels) - 1) * gap
    height = gh * res
    if max(width, height) > limits.max_side:
        raise ValueError(f"a {width}x{height} video is larger than the limit of {limits.max_side} pixels per side "
                         "(STYLECORE_VIDEO_MAX_SIDE): use a smaller grid or model")
    return VideoPlan(frames=frames, keyframes=keys, cell_size=cell, size=(width, height), gap=gap,
                     fps=float(settings.fps))


class _Track:
    """One panel's walk: codes per frame -> a tiled uint8 grid image per frame."""

    @torch.no_grad()
    def __init__(self, panel: Panel, settings: VideoSettings, plan: VideoPlan):
        G = self.G = panel.G
        self.device = next(G.parameters()).device
        self.settings, self.plan = settings, plan
        self.kwargs = {"noise_mode": settings.generation.noise_mode, "force_fp32": panel.force_fp32}
        gw, gh = settings.grid
        if settings.codes_path is not None:
            keys = load_latents(settings.codes_path, G.num_ws, G.w_dim).to(self.device)
        elif settings.space == "w":
            keys = settings_ws(G, settings.seeds, settings.generation, self.device)
        else:
            keys = z_from_seeds(settings.seeds, G.z_dim, self.device)
        keys = keys.reshape(gw * gh, plan.keyframes, *keys.shape[1:])
        center = G.mapping.w_avg.to(keys.dtype) if settings.space == "w" else None
        self.walk = KeyframeWalk(keys, settings.kind, int(settings.frames_per_transition), settings.loop, center)

    def _ws(self, codes: torch.Tensor) -> torch.Tensor:
        if self.settings.space == "w":
            return codes
        gen = self.settings.generation
        c = class_labels(self.G.c_dim, gen.class_idx, len(codes), self.device)
        return self.G.mapping(codes, c, truncation_psi=gen.truncation_psi, truncation_cutoff=gen.truncation_cutoff)

    @torch.no_grad()
    def render(self, frames: Sequence[int], batch_size: int) -> torch.Tensor:
        """[len(frames), C, gh * H, gw * W] float images in about [-1, 1]."""
        cells = self.settings.grid[0] * self.settings.grid[1]
        codes = self.walk(frames).flatten(0, 1)  # [B * cells, ...], frame-major
        gen = self.settings.generation
        transforms = None
        if is_stylegan3(self.G):  # per-frame matrices; the model's own transform buffer is never touched
            m = self.settings.camera.transforms(frames, self.plan.frames, gen.translate, gen.rotate_degrees)
            m = torch.from_numpy(m).to(self.device, torch.float32)
            transforms = m.repeat_interleave(cells, dim=0)
        images = []
        for start in range(0, len(codes), batch_size):
            ws = self._ws(codes[start:start + batch_size])
            extra = {} if transforms is None else {"transform": transforms[start:start + batch_size]}
            images.append(self.G.synthesis(ws, **self.kwargs, **extra).float())
        img = torch.cat(images)
        w, h = self.plan.cell_size
        if img.shape[-2:] != (h, w):
            img = F.interpolate(img, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        gw, gh = self.settings.grid
        img = img.reshape(len(frames), gh, gw, img.shape[1], h, w).permute(0, 3, 1, 4, 2, 5)
        return img.reshape(len(frames), -1, gh * h, gw * w)


def frame_batches(models: Models, settings: VideoSettings, plan: VideoPlan,
                  batch_size: int = 8) -> Iterator[np.ndarray]:
    """uint8 frames [B, H, W, 3] in order; `batch_size` counts images per synthesis call."""
    panels = _as_panels(models)
    if not panels:
        raise ValueError("no model to render")
    tracks = [_Track(p, settings, plan) for p in panels]
    cells = settings.grid[0] * settings.grid[1]
    per_batch = max(1, batch_size // cells)
    for start in range(0, plan.frames, per_batch):
        frames = list(range(start, min(start + per_batch, plan.frames)))
        parts = []
        for i, track in enumerate(tracks):
            img = track.render(frames, batch_size)
            if img.shape[1] == 1:
                img = img.expand(-1, 3, -1, -1)
            if i:
                parts.append(torch.zeros_like(img[..., :plan.gap]) - 1)  # a black gap between panels
            parts.append(img.to(tracks[0].device))
        yield to_uint8(torch.cat(parts, dim=-1))


def render_video_steps(
    models: Models,
    settings: VideoSettings,
    out_path: Union[str, Path],
    limits: Optional[VideoLimits] = None,
    batch_size: int = 8,
    cancel: ShouldStop = None,
) -> Generator[tuple[float, str], None, VideoResult]:
    """Render step by step, yielding (fraction, message) after each batch; returns the result.

    Closing the generator (Gradio's Stop) or setting `cancel` stops at the next batch and
    leaves no file behind; `cancel` then raises stylecore.progress.Cancelled.
    """
    panels = _as_panels(models)
    limits = limits or VideoLimits.from_env()
    plan = plan_video(panels, settings, limits)
    out_path = Path(out_path)
    if out_path.suffix.lower() != ".mp4":
        raise ValueError(f"the video is written as MP4: name it *.mp4, not {out_path.name}")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    gif_size = None
    if settings.gif:
        scale = min(1.0, limits.gif_max_side / max(plan.size))
        gif_size = (int(plan.size[0] * scale), int(plan.size[1] * scale))
    check_free_space(out_path.parent, estimated_bytes(*plan.size, plan.frames, gif_size, plan.frames))
    if stop_requested(cancel):
        raise Cancelled("video cancelled before it started")
    start = time.perf_counter()
    with Mp4Writer(out_path, plan.size, plan.fps) as writer:
        for frames in frame_batches(panels, settings, plan, batch_size):
            writer.write(frames)
            if stop_requested(cancel):  # before yielding: a cancelled caller may never resume this generator
                raise Cancelled("video cancelled; no file was written")
            rate = writer.frames / (time.perf_counter() - start)
            yield writer.frames / plan.frames, f"rendered {writer.frames} of {plan.frames} frames ({rate:.1f} fps)"
    gif_path = None
    if settings.gif:
        yield 1.0, "making the GIF"
        gif_path = mp4_to_gif(out_path, out_path.with_suffix(".gif"), limits.gif_max_side, plan.fps)
    return VideoResult(out_path, gif_path, plan, time.perf_counter() - start)


def render_video(
    models: Models,
    settings: VideoSettings,
    out_path: Union[str, Path],
    limits: Optional[VideoLimits] = None,
    batch_size: int = 8,
    progress: Progress = None,
    cancel: ShouldStop = None,
) -> VideoResult:
    """Render a video to `out_path` (MP4, plus a GIF beside it when asked) with progress reports."""
    steps = render_video_steps(models, settings, out_path, limits, batch_size, cancel)
    try:
        while True:
            report(progress, *next(steps))
    except StopIteration as done:
        return done.value
    finally:
        steps.close()

