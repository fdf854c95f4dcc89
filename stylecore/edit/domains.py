"""StyleGAN-NADA domains (Gal et al. 2021): one W+ code through a generator and through copies of it
fine-tuned by text into other domains (anime, Pixar, sketch, ...), side by side or as a morph.

The domain generators share the base generator's architecture and mapping network (NADA tunes the
synthesis layers only), so a code found for the base (a seed, an inversion) means "the same face"
in every domain. The morph interpolates the two synthesis networks' weights layer by layer with one
t per frame (torch.lerp: the first frame is the base model's image and the last the domain's, exactly),
rendered through a private view of the base network (stylecore.networks.private), never writing to
either shared model; stylecore.video.writer.mp4_steps makes the frames a video.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from stylecore.codes.generate import to_uint8
from stylecore.networks.private import with_tensors

__all__ = ["check_same_network", "render_through", "morph_weights", "morph_frames"]

MAX_MORPH_FRAMES = 240


def _synthesis_tensors(G: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {**dict(G.synthesis.named_parameters()), **dict(G.synthesis.named_buffers())}


def check_same_network(base: torch.nn.Module, domain: torch.nn.Module, name: str) -> None:
    """A domain generator must be the base generator's network with other weights: same tensors, same shapes."""
    ours, theirs = _synthesis_tensors(base), _synthesis_tensors(domain)
    if ours.keys() != theirs.keys() or any(ours[k].shape != theirs[k].shape for k in ours):
        raise ValueError(f"{name} is not a domain of this generator: its synthesis network differs "
                         f"({base.img_resolution} px and {domain.img_resolution} px, or other layers)")


def _image(synthesis: torch.nn.Module, ws: torch.Tensor, force_fp32: bool) -> np.ndarray:
    with torch.no_grad():
        return to_uint8(synthesis(ws, noise_mode="const", force_fp32=force_fp32))[0]


def render_through(models: Sequence[torch.nn.Module], ws: torch.Tensor, force_fp32: bool = True) -> list[np.ndarray]:
    """The image of one code [1, num_ws, w_dim] through each generator, in order."""
    out = []
    for G in models:
        device = next(G.parameters()).device
        out.append(_image(G.synthesis, ws.to(device=device, dtype=torch.float32), force_fp32))
    return out


def morph_weights(base: torch.nn.Module, domain: torch.nn.Module, t: float) -> dict[str, torch.Tensor]:
    """The synthesis weights `t` of the way from the base's to the domain's (floating tensors only)."""
    theirs = _synthesis_tensors(domain)
    return {name: torch.lerp(mine, theirs[name].to(mine.device, mine.dtype), float(t))
            for name, mine in _synthesis_tensors(base).items() if mine.is_floating_point()}


def morph_frames(base: torch.nn.Module, domain: torch.nn.Module, ws: torch.Tensor,
                 frames: int, force_fp32: bool = True) -> Iterator[np.ndarray]:
    """`frames` images of one code as the weights move from the base generator to the domain's."""
    if not 2 <= int(frames) <= MAX_MORPH_FRAMES:
        raise ValueError(f"frames must be from 2 to {MAX_MORPH_FRAMES}, got {frames}")
    device = next(base.parameters()).device
    ws = ws.to(device=device, dtype=torch.float32)
    for t in np.linspace(0.0, 1.0, int(frames)):
        yield _image(with_tensors(base.synthesis, morph_weights(base, domain, float(t))), ws, force_fp32)
