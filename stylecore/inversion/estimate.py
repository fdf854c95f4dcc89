"""How long an inversion will take, said before it starts, from one measured step.

On a CPU an optimisation step of a 1024 px model takes seconds, so the tab tells the user what the
chosen methods, step counts and schedule will cost before the run. Each cost is measured once per
model, device and resolution (one W+ step: synthesis, LPIPS, backward; one render; one encoder pass
of the released e4e architecture with random weights, which stands for a HyperStyle pass too) and kept
by the model manager (`manager.resource`), so the first estimate pays for the measurement and later ones
are free.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional, Sequence

import torch
import torch.nn.functional as F

from stylecore.inversion.methods import MethodSpec, method
from stylecore.inversion.optimize import render, w_stats
from stylecore.codes.schedule import Stages, schedule_named
from stylecore.perception.metrics import LpipsTarget, shared_lpips

if TYPE_CHECKING:
    from stylecore.engine.manager import LoadedModel, ModelManager

__all__ = ["Estimate", "LONG_SECONDS", "step_seconds", "estimate"]

LONG_SECONDS = 600  # an estimate above this says how to get a result sooner


def _timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def _measure_step(model: LoadedModel, lpips_net: torch.nn.Module, resolution: int) -> float:
    """Seconds of one W+ step (render at `resolution`, MSE + LPIPS, gradient) from w_avg."""
    G = model.G
    ws = w_stats(G, 1000)[0].repeat(1, G.num_ws, 1).requires_grad_(True)
    target = torch.zeros(1, G.img_channels, resolution, resolution, device=model.device)
    distance = LpipsTarget(lpips_net, target)
    stop_at = {"stop_at": resolution} if resolution != G.img_resolution else {}

    def step() -> None:
        img = render(G, ws, None, model.force_fp32, **stop_at)
        loss = F.mse_loss(img, target) + distance.distance(img).sum()
        torch.autograd.grad(loss, [ws])

    return _timed(step)


def _measure_encoder_pass(device: torch.device) -> float:
    """Seconds of one e4e network pass (released architecture, random weights, 256 px input); the
    decoding is a render, counted apart."""
    from stylecore.networks.encoders import Encoder4Editing

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        encoder = Encoder4Editing(input_nc=3, n_styles=18).to(device).eval().requires_grad_(False)
    image = torch.zeros(1, 3, 256, 256, device=device)
    with torch.no_grad():
        return _timed(lambda: encoder(image))


def step_seconds(manager: ModelManager, model: LoadedModel, resolution: int) -> float:
    """One optimisation step's seconds on `model` at `resolution`, measured once and kept by the manager."""
    key = ("inversion_step_seconds", model.card.id, str(model.device), resolution)
    return manager.resource(key, lambda: _measure_step(model, shared_lpips(manager), resolution))


def _render_seconds(manager: ModelManager, model: LoadedModel) -> float:
    key = ("inversion_render_seconds", model.card.id, str(model.device))

    def measure() -> float:
        with torch.no_grad():
            ws = model.G.mapping(torch.zeros(1, model.G.z_dim, device=model.device), None)
            return _timed(lambda: render(model.G, ws, None, model.force_fp32))

    return manager.resource(key, measure)


def _encoder_seconds(manager: ModelManager, model: LoadedModel) -> float:
    """One encoder pass and its decoding on `model`."""
    key = ("inversion_encoder_seconds", str(model.device))
    return manager.resource(key, lambda: _measure_encoder_pass(model.device)) + _render_seconds(manager, model)


@dataclass
class Estimate:
    """The predicted seconds of each method and in all, and what a step costs."""

    seconds: float
    lines: list[str]

    def text(self) -> str:
        text = f"**Estimate: about {_duration(self.seconds)}** on this machine. " + "; ".join(self.lines) + "."
        if self.seconds > LONG_SECONDS:
            text += (" That is long for a CPU: fewer steps, the coarse-to-fine schedule, or a method that runs in "
                     "passes (an encoder, HyperStyle) finish far sooner.")
        return text


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def estimate(manager: ModelManager, model: LoadedModel, specs: Sequence[MethodSpec],
             schedule_name: Optional[str] = "auto") -> Estimate:
    """The time `specs` will take on `model` with the schedule named ('auto': the device's default),
    from measured steps (see the module)."""
    G = model.G
    schedule = schedule_named(schedule_name, model.device)
    lines: list[str] = []
    total = 0.0
    encoded: set[tuple[str, int]] = set()
    for spec in specs:
        found = method(spec.kind)
        seconds = 0.0
        if found.uses_encoder and (spec.encoder, spec.iterations) not in encoded:
            encoded.add((spec.encoder, spec.iterations))
            seconds += spec.iterations * _encoder_seconds(manager, model)
        elif found.iterative:  # HyperStyle: its W encoder, then a hypernetwork pass and a render per pass
            seconds += (spec.iterations + 1) * _encoder_seconds(manager, model)
        if found.steps is not None:
            stages = Stages(G, schedule, spec.steps)
            full = step_seconds(manager, model, G.img_resolution)
            coarse = step_seconds(manager, model, stages.size) if stages.coarse_steps else 0.0
            seconds += found.rounds * (stages.coarse_steps * coarse + (spec.steps - stages.coarse_steps) * full)
            seconds += _render_seconds(manager, model)
            cost = (f"{coarse:.2f} s/step at {stages.size} px, {full:.2f} s/step at {G.img_resolution} px"
                    if stages.coarse_steps else f"{full:.2f} s/step at {G.img_resolution} px")
            if schedule.coarse and stages.size is None:
                cost += " (no coarse-to-fine for this network: every step at full resolution)"
            rounds = f"{found.rounds} x " if found.rounds > 1 else ""
            lines.append(f"{found.short}: {_duration(seconds)} ({rounds}{spec.steps} steps, {cost})")
        else:
            lines.append(f"{found.short}: {_duration(seconds)} ({spec.iterations} pass(es))")
        total += seconds
    return Estimate(total, lines)
