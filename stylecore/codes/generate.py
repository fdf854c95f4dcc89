"""Image generation: seeds to images, style mixing, and StyleGAN3 translate/rotate.

Plain functions over a generator so the tab, the command line and Python scripts share them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import numpy as np
import torch

from stylecore.codes.latents import seeds_to_ws
from stylecore.progress import Progress, report


@dataclass(frozen=True)
class GenerationSettings:
    """The knobs of one generation request, validated once."""

    truncation_psi: float = 1.0
    truncation_cutoff: Optional[int] = None
    noise_mode: str = "const"
    class_idx: Optional[int] = None
    translate: tuple[float, float] = (0.0, 0.0)
    rotate_degrees: float = 0.0

    def validate(self, G: torch.nn.Module) -> None:
        if not math.isfinite(self.truncation_psi) or not -2.0 <= self.truncation_psi <= 2.0:
            raise ValueError(f"truncation psi must be a number from -2 to 2, got {self.truncation_psi}")
        if self.truncation_cutoff is not None and not 0 <= self.truncation_cutoff <= G.num_ws:
            raise ValueError(f"truncation cutoff must be from 0 to {G.num_ws} (the model's number of ws)")
        if self.noise_mode not in ("const", "random", "none"):
            raise ValueError(f"noise mode must be 'const', 'random' or 'none', got {self.noise_mode!r}")
        values = (*self.translate, self.rotate_degrees)
        if not all(math.isfinite(v) for v in values):
            raise ValueError("translate and rotate must be finite numbers")
        if any(abs(v) > 4 for v in self.translate):
            raise ValueError("translate must be within -4 and 4 image widths")


def is_stylegan3(G: torch.nn.Module) -> bool:
    """StyleGAN3 generators take an input transform; StyleGAN2 ones do not."""
    return G.architecture == "stylegan3"


def make_transform(translate: Sequence[float] = (0.0, 0.0), rotate_degrees: float = 0.0) -> np.ndarray:
    """The matrix for synthesis.input.transform: the inverse of a rotation then translation.

    Translation is in image widths (1.0 moves the content a full image), as in the official tools.
    """
    a = math.radians(rotate_degrees)
    m = np.array([[math.cos(a), math.sin(a), translate[0]],
                  [-math.sin(a), math.cos(a), translate[1]],
                  [0.0, 0.0, 1.0]])
    return np.linalg.inv(m)


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """[N, C, H, W] in about [-1, 1] -> [N, H, W, C] uint8, rounding as the official scripts do."""
    img = (img.permute(0, 2, 3, 1).float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    arr = img.cpu().numpy()
    return arr if arr.shape[-1] != 1 else arr[..., 0]


def synthesis_kwargs(G: torch.nn.Module, settings: GenerationSettings, force_fp32: bool,
                     device: torch.device) -> dict:
    """Keyword arguments for G.synthesis, with the StyleGAN3 transform passed per call."""
    kwargs: dict = {"noise_mode": settings.noise_mode, "force_fp32": force_fp32}
    if is_stylegan3(G):
        m = make_transform(settings.translate, settings.rotate_degrees)
        kwargs["transform"] = torch.from_numpy(m).to(device=device, dtype=torch.float32)
    elif settings.translate != (0.0, 0.0) or settings.rotate_degrees != 0:
        raise ValueError("translate and rotate work only with StyleGAN3 models")
    return kwargs


def settings_ws(G: torch.nn.Module, seeds: Sequence[int], settings: GenerationSettings,
                device: Union[str, torch.device, None] = None) -> torch.Tensor:
    """W+ codes for seeds with the truncation and class of `settings`."""
    return seeds_to_ws(G, seeds, settings.truncation_psi, settings.truncation_cutoff, settings.class_idx, device)


@torch.no_grad()
def generate_images(
    G: torch.nn.Module,
    seeds: Sequence[int],
    settings: GenerationSettings = GenerationSettings(),
    force_fp32: bool = True,
    batch_size: int = 8,
    progress: Progress = None,
) -> list[np.ndarray]:
    """One uint8 HWC image per seed, generated in batches with progress reports."""
    settings.validate(G)
    device = next(G.parameters()).device
    images: list[np.ndarray] = []
    for start in range(0, len(seeds), batch_size):
        batch = list(seeds[start:start + batch_size])
        ws = settings_ws(G, batch, settings, device)
        img = G.synthesis(ws, **synthesis_kwargs(G, settings, force_fp32, device))
        images.extend(to_uint8(img))
        report(progress, len(images) / len(seeds), f"generated {len(images)} of {len(seeds)} images")
    return images


@torch.no_grad()
def style_mix(
    G: torch.nn.Module,
    row_seeds: Sequence[int],
    col_seeds: Sequence[int],
    col_layers: Sequence[int],
    settings: GenerationSettings = GenerationSettings(),
    force_fp32: bool = True,
    progress: Progress = None,
) -> np.ndarray:
    """A grid: first row the column seeds, first column the row seeds, each cell the row seed's
    code with the layers in `col_layers` taken from the column seed. Returns one uint8 image."""
    settings.validate(G)
    if not row_seeds or not col_seeds:
        raise ValueError("style mixing needs at least one row seed and one column seed")
    bad = [i for i in col_layers if not 0 <= int(i) < G.num_ws]
    if bad or not col_layers:
        raise ValueError(f"layers taken from the columns must be from 0 to {G.num_ws - 1}, got {list(col_layers)}")
    device = next(G.parameters()).device
    kwargs = synthesis_kwargs(G, settings, force_fp32, device)
    row_ws = settings_ws(G, row_seeds, settings, device)
    col_ws = settings_ws(G, col_seeds, settings, device)
    layers = torch.as_tensor(sorted(set(int(i) for i in col_layers)), device=device)

    def render(ws: torch.Tensor) -> np.ndarray:
        return to_uint8(G.synthesis(ws, **kwargs))

    row_imgs = render(row_ws)
    col_imgs = render(col_ws)
    h, w = row_imgs.shape[1:3]
    blank = np.full_like(row_imgs[0], 255)
    grid = [[blank] + list(col_imgs)]
    for r in range(len(row_seeds)):
        mixed = row_ws[r:r + 1].repeat(len(col_seeds), 1, 1)
        mixed[:, layers] = col_ws[:, layers]
        grid.append([row_imgs[r]] + list(render(mixed)))
        report(progress, (r + 1) / len(row_seeds), f"mixed row {r + 1} of {len(row_seeds)}")
    return np.concatenate([np.concatenate(row, axis=1) for row in grid], axis=0)


def image_grid(images: Sequence[np.ndarray], cols: Optional[int] = None) -> np.ndarray:
    """Tile equally sized images into one, `cols` wide (about square by default)."""
    if not images:
        raise ValueError("no images to tile")
    cols = cols or math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / cols)
    blank = np.zeros_like(images[0])
    cells = list(images) + [blank] * (rows * cols - len(images))
    return np.concatenate([np.concatenate(cells[r * cols:(r + 1) * cols], axis=1) for r in range(rows)], axis=0)
