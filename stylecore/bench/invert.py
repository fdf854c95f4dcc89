"""Inversion's cost on a released-size StyleGAN2 with random weights: the optimisers full-resolution
against coarse-to-fine, PTI's two phases, and a HyperStyle pass, each beside what was published.

A random-weight generator of the released StyleGAN2 configuration and a random-backbone LPIPS (no
download); the target is a seed's image (truncation 0.7), so the true code is known and the target is
in the generator's domain.

* W and W+: each schedule runs its own step budget from the same start; the report gives the mean
  seconds per step of each phase (from the progress callback's timestamps, no extra passes), the wall
  time to the final result, and the final LPIPS, MSE and code error of each, so a reader sees whether
  coarse-to-fine reaches the full schedule's quality and at what share of its time.
* PTI: a few steps of its W pivot and of its tuning under each schedule, timed the same way, projected
  to the paper's 450 + 350 steps and to the tab's default budget: a full run at 1024 px takes too long
  on a CPU to be run for a benchmark, and a step's cost does not depend on how many follow it.
* HyperStyle: an untrained model of the released widths (`random_hyperstyle(G, **RELEASED)`), so the
  time per image is the real one while the image is not; one warm-up image, then the timed ones.

Untrained networks make only the times meaningful (and the W/W+ quality relative to each other); the
published figures are a trained model's on a V100-class GPU, printed on the same rows for scale.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from stylecore.codes.schedule import COARSE_TO_FINE, FULL, Schedule, Stages
from stylecore.inversion.compare import code_error, result_tensor, seed_target
from stylecore.inversion.hyperstyle import DEFAULT_ITERATIONS, invert
from stylecore.inversion.hyperstyle_random import RELEASED, random_hyperstyle
from stylecore.inversion.methods import METHODS as INVERSION_METHODS
from stylecore.inversion.optimize import (InversionResult, ProjectorConfig, WPlusConfig, WStats, project_w,
                                          project_wplus, target_tensor, w_stats)
from stylecore.inversion.pti import PtiConfig, tune
from stylecore.perception.metrics import build_lpips, image_metrics

__all__ = ["METHODS", "PUBLISHED", "Bench", "ScheduleRun", "PtiRun", "prepare", "bench_schedules", "bench_pti",
           "bench_hyperstyle", "format_report", "format_pti", "format_hyperstyle"]

METHODS = {"w": "W (projector)", "wplus": "W+ (Image2StyleGAN)", "pti": "PTI (W pivot + pivotal tuning)",
           "hyperstyle": "HyperStyle"}
PAPER_PTI_STEPS = (450, 350)  # the published run: the W pivot's steps, then the tuning's
PUBLISHED = {  # seconds per image of the trained models, as published, on a V100-class GPU
    "pti": (56.0, "PTI, 450 + 350 steps"),
    "hyperstyle": (1.2, "HyperStyle, 5 passes"),
}


@dataclass(frozen=True)
class Bench:
    """What every row at one resolution shares: the generator, the LPIPS, the seed's image as the target,
    its true code and G's W statistics, made once rather than once per row."""

    G: torch.nn.Module
    lpips_net: torch.nn.Module
    target: torch.Tensor
    true_ws: torch.Tensor
    stats: WStats
    force_fp32: bool


def prepare(G: torch.nn.Module, seed: int = 0) -> Bench:
    """The shared inputs of G's rows; the target is the image of `seed` at truncation 0.7."""
    device = next(G.parameters()).device
    force_fp32 = device.type != "cuda"
    image, true_ws = seed_target(G, seed, 0.7, force_fp32)
    return Bench(G, build_lpips(pretrained=False).to(device), target_tensor(image, G, device), true_ws, w_stats(G),
                 force_fp32)


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

    def projected(self, stages: Stages) -> float:
        """Seconds the steps of `stages` would take at this run's seconds per step of each resolution."""
        return sum(self.per_step(stages.resolution(step)) for step in range(stages.steps))


@dataclass
class PtiRun:
    """PTI under one schedule: its timed pivot and tuning steps, and the seconds projected for each
    budget (name -> seconds of its pivot and tuning steps together)."""

    schedule: str
    pivot: ScheduleRun
    tuning: ScheduleRun
    projected: dict[str, float] = field(default_factory=dict)


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


def _chosen(name: str, schedule: Schedule) -> Schedule:
    """The schedule a run named `name` uses: `schedule` (its coarse settings) for coarse-to-fine."""
    return schedule if name == COARSE_TO_FINE else Schedule(FULL)


def _optimise(bench: Bench, method: str, name: str, steps: int, schedule: Schedule) -> ScheduleRun:
    """One W ('w') or W+ ('wplus') optimisation under schedule `name`, its steps timed."""
    seconds, on_step = _timed_steps()
    optimise, config = (project_w, ProjectorConfig) if method == "w" else (project_wplus, WPlusConfig)
    result = optimise(bench.G, bench.target, bench.lpips_net, config(steps=steps), force_fp32=bench.force_fp32,
                      progress=on_step, stats=bench.stats, schedule=_chosen(name, schedule))
    return ScheduleRun(name, result, seconds, code_error(result, bench.true_ws))


def bench_schedules(bench: Bench, method: str, steps: dict[str, int],
                    schedule: Schedule = Schedule(COARSE_TO_FINE)) -> list[ScheduleRun]:
    """Invert the target with each schedule in `steps` (name -> steps), same start, with final metrics."""
    runs = []
    for name, count in steps.items():
        run = _optimise(bench, method, name, count, schedule)
        run.result.metrics = image_metrics(bench.lpips_net, result_tensor(run.result).to(bench.target.device),
                                           bench.target)
        runs.append(run)
    return runs


def pti_budgets() -> dict[str, tuple[int, int]]:
    """The budgets PTI's time is projected for: the tab's default (its steps for each round) and the paper's."""
    default = INVERSION_METHODS["pti"].steps.default
    return {f"tab default {default}+{default}": (default, default),
            f"paper {PAPER_PTI_STEPS[0]}+{PAPER_PTI_STEPS[1]}": PAPER_PTI_STEPS}


def _pti(bench: Bench, name: str, steps: int, schedule: Schedule) -> tuple[ScheduleRun, ScheduleRun]:
    """`steps` W pivot steps, then `steps` tuning steps (no early stop) under schedule `name`, each timed."""
    pivot = _optimise(bench, "w", name, steps, schedule)
    seconds, on_step = _timed_steps()
    config = PtiConfig(steps=steps, lpips_threshold=0.0)  # no early stop: every step is timed
    tuned = tune(bench.G, bench.target, bench.lpips_net, pivot.result, config, force_fp32=bench.force_fp32,
                 progress=on_step, schedule=_chosen(name, schedule))
    return pivot, ScheduleRun(name, tuned, seconds)


def bench_pti(bench: Bench, steps: int, schedules: list[str],
              schedule: Schedule = Schedule(COARSE_TO_FINE)) -> list[PtiRun]:
    """PTI's two phases timed for `steps` steps each under every schedule named in `schedules`, projected to
    `pti_budgets()`. A few steps make a mean that a first call's set-up (seconds) would dominate, so an
    untimed 2-step run at both resolutions goes first; at least 2 steps, so coarse-to-fine times both."""
    if steps < 2:
        raise ValueError(f"PTI needs at least 2 timed steps per phase, got {steps}")
    _pti(bench, COARSE_TO_FINE, 2, schedule)  # warm-up
    runs = []
    for name in schedules:
        pivot, tuning = _pti(bench, name, steps, schedule)
        plan = _chosen(name, schedule)
        projected = {budget: pivot.projected(Stages(bench.G, plan, p)) + tuning.projected(Stages(bench.G, plan, t))
                     for budget, (p, t) in pti_budgets().items()}
        runs.append(PtiRun(name, pivot, tuning, projected))
    return runs


def _sync(device: torch.device) -> None:
    """Wait for the GPU's queued work, so that a timer read next counts it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_hyperstyle(bench: Bench, repeat: int = 1) -> float:
    """Mean seconds per image of `hyperstyle.invert` (its default passes) with an untrained HyperStyle of
    the released widths for G, after one warm-up image."""
    model = random_hyperstyle(bench.G, **RELEASED)
    invert(model, bench.target)  # warm-up: first-call allocations and kernel choices
    device = bench.target.device
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeat):
        invert(model, bench.target)
    _sync(device)
    return (time.perf_counter() - start) / repeat


def _split(result: InversionResult, res: int) -> str:
    """The steps by resolution: '9@256+1@1024', or '20@1024' for a full run."""
    coarse = [size for size in result.resolutions if size != res]
    return f"{len(coarse)}@{coarse[0]}+{result.steps - len(coarse)}@{res}" if coarse else f"{result.steps}@{res}"


def _step_seconds(run: ScheduleRun, res: int) -> str:
    """Seconds per step at the coarse resolution ('-' when none ran there) and at full resolution."""
    coarse = [size for size in run.result.resolutions if size != res]
    coarse_s = f"{run.per_step(coarse[0]):6.2f}" if coarse else "     -"
    return f"{coarse_s}  {run.per_step(res):6.2f}"


def _published(method: str) -> str:
    """The published figure of `method`, with its source, for the end of its row."""
    seconds, source = PUBLISHED[method]
    return f"published ({source}): ~{seconds:g} s/image on a V100-class GPU"


def format_report(runs: list[ScheduleRun], res: int, method: str) -> str:
    """The runs side by side, then whether coarse-to-fine reached the full run's quality and at what share
    of its time."""
    lines = [f"{res}px {METHODS[method]}: schedule, steps, s/step coarse, s/step full res, s to result, "
             "LPIPS, MSE, code error"]
    for run in runs:
        r = run.result
        lines.append(f"  {run.schedule:15s} {_split(r, res):>13s}  {_step_seconds(run, res)}  {r.seconds:8.1f}  "
                     f"{r.metrics['lpips']:.4f}  {r.metrics['mse']:.5f}  {run.code_error:.4f}")
    by_name = {run.schedule: run.result for run in runs}
    if {FULL, COARSE_TO_FINE} <= set(by_name):
        full, c2f = by_name[FULL], by_name[COARSE_TO_FINE]
        share = c2f.seconds / full.seconds
        reached = c2f.metrics["lpips"] <= full.metrics["lpips"] and c2f.metrics["mse"] <= full.metrics["mse"]
        lines.append(f"  coarse-to-fine took {share:.1%} of the full schedule's time and "
                     f"{'reached' if reached else 'did NOT reach'} its final LPIPS and MSE")
    return "\n".join(lines)


def format_pti(runs: list[PtiRun], res: int, where: str) -> str:
    """Per schedule: the timed steps and seconds per step of each phase, then the projected seconds per
    image of each budget, with the published figure on the same row."""
    budgets = ", ".join(f"projected s/image {budget}" for budget in pti_budgets())
    lines = [f"{res}px {METHODS['pti']}, {where} times on random weights: schedule, timed steps per phase, "
             f"pivot s/step coarse, full res, tuning s/step coarse, full res, {budgets}"]
    for run in runs:
        projected = "  ".join(f"{seconds:8.1f}" for seconds in run.projected.values())
        lines.append(f"  {run.schedule:15s} {_split(run.pivot.result, res):>13s}  {_step_seconds(run.pivot, res)}  "
                     f"{_step_seconds(run.tuning, res)}  {projected}  ({_published('pti')})")
    return "\n".join(lines)


def format_hyperstyle(seconds: float, res: int, where: str) -> str:
    """The seconds per image, with the published figure on the same row."""
    return (f"{res}px {METHODS['hyperstyle']} ({DEFAULT_ITERATIONS} passes, released widths, untrained), {where} time "
            f"on random weights: {seconds:8.2f} s/image  ({_published('hyperstyle')})")
