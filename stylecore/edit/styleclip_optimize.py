"""StyleCLIP latent optimisation (Patashnik et al. 2021, method 1): move a W+ code so CLIP finds the
image closer to the text, while an L2 term keeps it near where it started.

L = (1 − cos(CLIP(image), CLIP(text))) + λ_L2·‖w − w₀‖² (+ λ_ID·(1 − cos(ID(image), ID(image₀))) when
an identity embedder is given). Adam with StyleCLIP's learning-rate ramp (warm up over the first 5%,
cosine down over the last 25%). Works on any StyleGAN2/3: only the generator and CLIP are needed.
Images go through CLIP's own preprocessing (see stylecore.perception.clip) rather than StyleCLIP's pooling.
A coarse-to-fine `Schedule` (stylecore.codes.schedule) renders the early steps at 256 px: CLIP looks at
224 px anyway. Only the split of the steps is taken from it: the learning rate keeps StyleCLIP's ramp,
since a larger one would move the edit further than the published settings.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

from stylecore.codes.schedule import Schedule, Stages
from stylecore.perception.clip import ClipModel, clean_prompt
from stylecore.progress import Cancelled, Progress, ShouldStop, report, stop_requested

__all__ = ["OptimizeConfig", "OptimizeResult", "learning_rate", "clip_loss", "optimize_latent"]


@dataclass(frozen=True)
class OptimizeConfig:
    """StyleCLIP's notebook defaults: 40 steps (the script uses 300), lr 0.1, λ_L2 0.008, λ_ID 0.005."""

    steps: int = 40
    lr: float = 0.1
    l2_lambda: float = 0.008
    id_lambda: float = 0.005

    def validate(self) -> None:
        if not 1 <= int(self.steps) <= 5000:
            raise ValueError(f"steps must be from 1 to 5000, got {self.steps}")
        for name in ("lr", "l2_lambda", "id_lambda"):
            value = float(getattr(self, name))
            if not math.isfinite(value) or value < 0 or value > 100:
                raise ValueError(f"{name} must be a number from 0 to 100, got {value}")


@dataclass
class OptimizeResult:
    """The edited code and the loss after each step."""

    ws: torch.Tensor
    clip_losses: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    resolutions: list[int] = field(default_factory=list)  # the synthesis resolution of each step
    note: str = ""  # the schedule that ran, when coarse-to-fine was asked for


def learning_rate(t: float, base: float, rampdown: float = 0.25, rampup: float = 0.05) -> float:
    """StyleCLIP's schedule at progress t in [0, 1]."""
    ramp = min(1.0, (1.0 - t) / rampdown)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    return base * ramp * min(1.0, t / rampup)


def clip_loss(clip: ClipModel, images: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
    """1 − cosine similarity of each image to the text, averaged (StyleCLIP's 1 − logits/100)."""
    return (1 - clip.encode_images(images) @ text_features.to(clip.device).T).mean()


def optimize_latent(G: torch.nn.Module, clip: ClipModel, ws: torch.Tensor, prompt: str,
                    config: OptimizeConfig = OptimizeConfig(),
                    identity: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
                    progress: Progress = None, should_stop: ShouldStop = None, schedule: Schedule = Schedule(),
                    **synthesis_kwargs: object) -> OptimizeResult:
    """Optimise W+ code(s) `ws` [N, num_ws, w_dim] towards `prompt`; G stays frozen. `schedule` may
    render the early steps coarse (the identity target is always the full image).

    `identity` maps images in [-1, 1] to unit face embeddings (e.g. ArcFace); without it the
    identity term is skipped. `should_stop` is polled every step: Cancelled ends the run."""
    prompt = clean_prompt(prompt)
    config.validate()
    synthesis_kwargs.setdefault("noise_mode", "const")
    text = clip.encode_text([prompt])
    w0 = ws.detach().float()
    w = w0.clone().requires_grad_(True)
    opt = torch.optim.Adam([w], lr=config.lr)
    result = OptimizeResult(w0)
    id_target = None
    steps = int(config.steps)
    stages = Stages(G, schedule, steps)
    result.note = stages.note("latent optimization")
    with torch.enable_grad():
        if identity is not None and config.id_lambda > 0:
            with torch.no_grad():
                id_target = identity(G.synthesis(w0, **synthesis_kwargs)).detach()
        for i in range(steps):
            if stop_requested(should_stop):
                raise Cancelled(f"stopped after {i} of {steps} steps")
            for group in opt.param_groups:
                group["lr"] = learning_rate(i / steps, config.lr)
            images = G.synthesis(w, **synthesis_kwargs, **stages.synthesis_kwargs(i))
            c_loss = clip_loss(clip, images, text)
            loss = c_loss + config.l2_lambda * (w - w0).square().sum()
            if id_target is not None:
                loss = loss + config.id_lambda * (1 - (identity(images) * id_target).sum(-1)).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            result.clip_losses.append(float(c_loss.detach()))
            result.losses.append(float(loss.detach()))
            result.resolutions.append(stages.resolution(i))
            report(progress, (i + 1) / steps, f"step {i + 1} of {steps}: CLIP loss {result.clip_losses[-1]:.4f}")
    result.ws = w.detach()
    return result
