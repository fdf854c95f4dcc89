"""Pivotal Tuning Inversion (Roich et al. 2021): keep a pivot code fixed and tune the generator's
synthesis weights until the pivot renders the target.

The pivot is a W projection (`optimize.project_w`). Tuning never touches the shared generator: the
synthesis parameters are cloned for this request and optimised in a private view of the synthesis
network (stylecore.networks.private), so concurrent requests on one model cannot see each other's
weights. The
result is an InversionResult whose `weights` hold the tuned synthesis parameters; `render_tuned`
renders any code (an edit of the pivot) with them.

Defaults are the paper's: Adam at 3e-4, LPIPS + L2 weighted 1:1, at most 350 steps, stopping early
once LPIPS falls to 0.06; the optional locality regulariser keeps the tuned generator equal to the
original one at codes a fixed distance away from the pivot, towards random codes.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from stylecore.codes.generate import to_uint8
from stylecore.codes.schedule import Schedule, Stages
from stylecore.inversion.optimize import Distances, InversionResult, StepLog, check_target, render, synthesize
from stylecore.networks.private import with_tensors
from stylecore.perception.metrics import perceptual_input
from stylecore.progress import Progress, ShouldStop

__all__ = ["PtiConfig", "tune", "render_tuned", "tuned_parameters"]

Weights = dict[str, torch.Tensor]


@dataclass(frozen=True)
class PtiConfig:
    """The paper's tuning settings (its repository's hyperparameters); `steps` is the usual change."""

    steps: int = 350
    learning_rate: float = 3e-4
    l2_weight: float = 1.0
    lpips_weight: float = 1.0
    lpips_threshold: float = 0.06  # stop once the reconstruction is this close (LPIPS)
    locality_weight: float = 0.0  # 0 = off (the paper's default); 0.1 when used
    locality_alpha: float = 30.0  # how far from the pivot the regularised codes lie
    locality_l2_weight: float = 0.1
    locality_lpips_weight: float = 0.1
    locality_samples: int = 1
    locality_psi: float = 0.5  # truncation of the random codes the direction points to
    seed: int = 0


def tuned_parameters(G: torch.nn.Module) -> Weights:
    """A private, trainable copy of the synthesis network's parameters (not its buffers)."""
    return {name: torch.nn.Parameter(p.detach().clone().float()) for name, p in G.synthesis.named_parameters()}


def render_tuned(G: torch.nn.Module, ws: torch.Tensor, weights: Optional[Weights], force_fp32: bool = True,
                 stop_at: Optional[int] = None) -> torch.Tensor:
    """G's synthesis of `ws` with the tuned `weights` in place of its own, for this call only."""
    if weights:
        device = next(G.parameters()).device
        weights = {name: w.to(device) for name, w in weights.items()}
    return render(G, ws, weights, force_fp32, stop_at)


def _locality_codes(G: torch.nn.Module, pivot_w: torch.Tensor, config: PtiConfig,
                    generator: torch.Generator) -> torch.Tensor:
    """Codes `locality_alpha` away from the pivot towards random (truncated) codes: [S, num_ws, w_dim]."""
    z = torch.randn(config.locality_samples, G.z_dim, generator=generator, device=pivot_w.device)
    with torch.no_grad():
        w = G.mapping(z, None, truncation_psi=config.locality_psi)[:, :1]
    direction = w - pivot_w
    direction = direction / direction.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    return (pivot_w + config.locality_alpha * direction).repeat(1, G.num_ws, 1)


def tune(G: torch.nn.Module, target: torch.Tensor, lpips_net: torch.nn.Module, pivot: InversionResult,
         config: PtiConfig = PtiConfig(), force_fp32: bool = True, progress: Progress = None,
         should_stop: ShouldStop = None, schedule: Schedule = Schedule()) -> InversionResult:
    """Tune a copy of G's synthesis weights so that `pivot.ws` renders `target` ([1, C, R, R] in [-1, 1]).

    `schedule` may run the early steps on the coarse image of a StyleGAN2 (stylecore.codes.schedule).
    The time reported includes the pivot's projection; `result.start` is the pivot itself.
    """
    check_target(G, target, config.steps)
    start = time.perf_counter()
    device = target.device
    pivot_ws = pivot.ws.to(device=device, dtype=torch.float32)
    if tuple(pivot_ws.shape) != (1, G.num_ws, G.w_dim):
        raise ValueError(f"the pivot must be [1, {G.num_ws}, {G.w_dim}], got {list(pivot_ws.shape)}")
    weights = tuned_parameters(G)
    synthesis = with_tensors(G.synthesis, weights)
    optimizer = torch.optim.Adam(list(weights.values()), lr=config.learning_rate)
    stages = Stages(G, schedule, config.steps)
    distances = Distances(lpips_net, target, stages)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    log = StepLog("Pivotal tuning", config.steps, progress, should_stop)
    for step in range(config.steps):
        for group in optimizer.param_groups:
            group["lr"] = config.learning_rate * stages.lr_scale(step)
        kwargs = stages.synthesis_kwargs(step)
        img = synthesize(synthesis, pivot_ws, force_fp32, **kwargs)
        lpips = distances.lpips_to(img).sum()
        loss = config.l2_weight * distances.mse_to(img) + config.lpips_weight * lpips
        if config.locality_weight > 0:
            loss = loss + config.locality_weight * _locality_loss(G, synthesis, pivot_ws, lpips_net, config,
                                                                  generator, force_fp32, kwargs)
        grads = torch.autograd.grad(loss, list(weights.values()), allow_unused=True)
        for w, g in zip(weights.values(), grads):
            w.grad = g
        optimizer.step()
        if log.record(step, loss, stages.resolution(step)):
            break
        if log.resolutions[-1] == G.img_resolution and float(lpips.detach()) <= config.lpips_threshold:
            break
    tuned = {name: w.detach() for name, w in weights.items()}
    with torch.no_grad():
        image = to_uint8(synthesize(synthesis, pivot_ws, force_fp32))[0]
    return InversionResult(f"PTI: {pivot.method} + pivotal tuning", "W + tuned weights", pivot.ws.clone(), image,
                           log.losses, time.perf_counter() - start + pivot.seconds, len(log.losses),
                           cancelled=log.cancelled, resolutions=log.resolutions, start=pivot,
                           note=stages.note("Pivotal tuning"), weights={name: w.cpu() for name, w in tuned.items()})


def _locality_loss(G: torch.nn.Module, tuned_synthesis: torch.nn.Module, pivot_ws: torch.Tensor,
                   lpips_net: torch.nn.Module, config: PtiConfig, generator: torch.Generator, force_fp32: bool,
                   kwargs: dict) -> torch.Tensor:
    """How far the tuned generator moved away from the original at codes near (not at) the pivot."""
    codes = _locality_codes(G, pivot_ws[:, :1], config, generator)
    with torch.no_grad():
        original = synthesize(G.synthesis, codes, force_fp32, **kwargs)
    tuned = synthesize(tuned_synthesis, codes, force_fp32, **kwargs)
    lpips = lpips_net(perceptual_input(tuned.float()), perceptual_input(original.float())).mean()
    return config.locality_l2_weight * F.mse_loss(tuned.float(), original.float()) + \
        config.locality_lpips_weight * lpips
