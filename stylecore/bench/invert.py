"""Optimisation-based inversion, full-resolution against coarse-to-fine, side by side.

A random-weight generator of the released StyleGAN2 configuration and a random-backbone LPIPS (no
download); the target is a seed's image (truncation 0.7), so the true code is known and the target is
in the generator's domain. Each schedule runs its own step budget from the same start; the report gives
the mean seconds per step of each phase (from the progress callback's timestamps, no extra passes),
the wall time to the final result, and the final LPIPS, MSE and code error of each, so a reader sees
whether coarse-to-fine reaches the full schedule's quality and at what share of its time.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from stylecore.inversion.compare import code_error, result_tensor, seed_target
from stylecore.inversion.optimize import (InversionResult, ProjectorConfig, WPlusConfig, project_w, project_wplus,
                                          target_tensor, w_stats)
from stylecore.codes.schedule import COARSE_TO_FINE, FULL, Schedule
from stylecore.perception.metrics import build_lpips, image_metrics

__all__ = ["ScheduleRun", "bench_schedules", "format_report"]

METHODS = {"wplus": "W+ (Image2StyleGAN)", "w": "W (projector)"}


@dataclass
class ScheduleRun:
    """One schedule's run: its steps, the seconds of each step, the final metrics."""

    schedule: str
    result: InversionResult
    step_seconds: list[float] = field(default_factory=list)
    code_error: float = 0.0

    def per_step(self, resolution: int) -> float:
        """Mean seconds of the steps at `resolution` (nan when none ran there)."""
        times = [s for s, r in zip(self.step_seconds, self.result.resolutions) if r == resolution]
        return sum(times) / len(times) if times else float("nan")


def _timed_steps() -> tuple[list[float], Callable[[float, str], None]]:
    """A progress callback and the list of step durations it fills: the time since its last call,
    shared by the steps done since ('step i of N'; the optimisers report at most ~10 times a second)."""
    seconds: list[float] = []
    last = [time.perf_counter()]

    def on_step(fraction: float, message: str) -> None:
        found = re.search(r"step (\d+) of", message)
        now = time.perf_counter()
        if found and int(found.group(1)) > len(seconds):
            count = int(found.group(1)) - len(seconds)
            seconds.extend([(now - last[0]) / count] * count)
            last[0] = now

    return seconds, on_step


def bench_schedules(G: torch.nn.Module, method: str, steps: dict[str, int], seed: int = 0,
                    schedule: Schedule = Schedule(COARSE_TO_FINE)) -> list[ScheduleRun]:
    """Invert the image of `seed` with each schedule in `steps` (name -> steps), same start and target."""
    device = next(G.parameters()).device
    force_fp32 = device.type != "cuda"
    net = build_lpips(pretrained=False).to(device)
    image, true_ws = seed_target(G, seed, 0.7, force_fp32)
    target = target_tensor(image, G, device)
    stats = w_stats(G)
    runs = []
    for name, count in steps.items():
        chosen = schedule if name == COARSE_TO_FINE else Schedule(FULL)
        seconds, on_step = _timed_steps()
        if method == "w":
            result = project_w(G, target, net, ProjectorConfig(steps=count), force_fp32=force_fp32, progress=on_step,
                               stats=stats, schedule=chosen)
        else:
            result = project_wplus(G, target, net, WPlusConfig(steps=count), force_fp32=force_fp32,
                                   progress=on_step, stats=stats, schedule=chosen)
        result.metrics = image_metrics(net, result_tensor(result).to(device), target)
        runs.append(ScheduleRun(name, result, seconds, code_error(result, true_ws)))
    return runs


def format_report(runs: list[ScheduleRun], res: int, method: str) -> str:
    """The runs side by side, then whether coarse-to-fine reached the full run's quality and at what share
    of its time."""
    lines = [f"{res}px {METHODS[method]}: schedule, steps, s/step coarse, s/step full res, s to result, "
             "LPIPS, MSE, code error"]
    for run in runs:
        r = run.result
        coarse = [size for size in r.resolutions if size != res]
        coarse_s = f"{run.per_step(coarse[0]):6.2f}" if coarse else "     -"
        split = f"{len(coarse)}@{coarse[0]}+{r.steps - len(coarse)}@{res}" if coarse else f"{r.steps}@{res}"
        lines.append(f"  {run.schedule:15s} {split:>13s}  {coarse_s}  {run.per_step(res):6.2f}  {r.seconds:8.1f}  "
                     f"{r.metrics['lpips']:.4f}  {r.metrics['mse']:.5f}  {run.code_error:.4f}")
    by_name = {run.schedule: run.result for run in runs}
    if {FULL, COARSE_TO_FINE} <= set(by_name):
        full, c2f = by_name[FULL], by_name[COARSE_TO_FINE]
        share = c2f.seconds / full.seconds
        reached = c2f.metrics["lpips"] <= full.metrics["lpips"] and c2f.metrics["mse"] <= full.metrics["mse"]
        lines.append(f"  coarse-to-fine took {share:.1%} of the full schedule's time and "
                     f"{'reached' if reached else 'did NOT reach'} its final LPIPS and MSE")
    return "\n".join(lines)
