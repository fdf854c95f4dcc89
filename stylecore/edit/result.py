"""What every edit returns, whichever technique made it: the images before and after, the edited code,
a sentence saying what was done, and how to save it all for download."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image

from stylecore.codes.generate import to_uint8
from stylecore.codes.latents import save_latents
from stylecore.codes.stylespace import save_styles

__all__ = ["EditResult", "first_image", "strip_of"]


def first_image(images: torch.Tensor) -> np.ndarray:
    """The first image of a synthesis batch as uint8 [H, W, C]."""
    return to_uint8(images)[0]


@dataclass
class EditResult:
    """One edited code. `styles` is set when the edit moved S: then `ws` is the unedited W+ code the
    S code came from (saved beside it as 'w'); otherwise `ws` is the edited W+ code."""

    method: str  # the technique, recorded in the saved code file
    summary: str  # what was done, in a sentence for the status line
    before: np.ndarray  # uint8 [H, W, C]
    after: np.ndarray  # uint8 [H, W, C]
    ws: torch.Tensor
    styles: Optional[list[torch.Tensor]] = None
    strip: list[tuple[np.ndarray, float]] = field(default_factory=list)  # (image, strength) across strengths
    seconds: float = 0.0  # time the edit itself took (networks and tables already loaded)

    @property
    def mean_change(self) -> float:
        """Mean absolute pixel change from before to after, of 255."""
        return float(np.abs(self.after.astype(np.int16) - self.before.astype(np.int16)).mean())

    def save(self, folder: Union[str, Path], stem: str = "edited") -> list[Path]:
        """Write the edited image (`stem`.png) and code (`stem`.npz) into `folder`; returns both paths."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        png, code = folder / f"{stem}.png", folder / f"{stem}.npz"
        Image.fromarray(self.after).save(png)
        if self.styles is not None:
            save_styles(code, self.ws, self.styles)
        else:
            save_latents(code, self.ws, method=self.method)
        return [png, code]


def strip_of(images: torch.Tensor, strengths: Sequence[float]) -> list[tuple[np.ndarray, float]]:
    """A synthesis batch, one image per strength, as (uint8 image, strength) pairs."""
    return list(zip(to_uint8(images), (float(s) for s in strengths)))
