"""The inversion methods, known in one place: each one's name and label, whether it needs an encoder,
its step budget (bounds, the tab's quick default, the full default), and how to run it.

The Inversion tab's choices and checks, the CLI's `invert` options and `compare.run_methods` all read
this registry, so a method or a budget rule is added or changed here only.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional

from stylecore.codes.schedule import Schedule
from stylecore.progress import Progress, ShouldStop

if TYPE_CHECKING:  # the CLI reads this registry to build its parser: no torch at import
    import torch

    from stylecore.inversion.hyperstyle import HyperStyleModel
    from stylecore.inversion.optimize import InversionResult, WStats

__all__ = ["Budget", "Method", "MethodSpec", "Job", "METHODS", "METHOD_KINDS", "ITERATIONS", "MAX_STEPS",
           "MAX_ITERATIONS", "CPU_HYBRID_STEPS", "method", "choose", "opening"]

MAX_STEPS = 10000
MAX_ITERATIONS = 20
CPU_HYBRID_STEPS = 20  # a short hybrid: about a minute at 1024 px on two CPU cores with coarse-to-fine


@dataclass(frozen=True)
class Budget:
    """A whole-number setting of a method, as the user sees it: its name, bounds, the tab's quick
    default, the full default (the CLI's), and a note on the published value."""

    name: str
    low: int
    high: int
    default: int
    full: int
    note: str = ""

    def check(self, value: Any) -> int:
        """`value` as a whole number within the bounds, or a ValueError that names this setting."""
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{self.name} must be a whole number, got {value!r}") from None
        if not math.isfinite(number) or number != int(number) or not self.low <= number <= self.high:
            raise ValueError(f"{self.name} must be a whole number from {self.low} to {self.high}, got {value!r}")
        return int(number)


ITERATIONS = Budget("Passes (ReStyle, HyperStyle)", 1, MAX_ITERATIONS, default=5, full=5)


@dataclass(frozen=True)
class MethodSpec:
    """One method to run, with its budget: optimisation steps, or passes (ReStyle, HyperStyle)."""

    kind: str
    steps: int = 0
    encoder: str = ""
    iterations: int = 1

    def validate(self) -> None:
        found = method(self.kind)
        if found.steps is not None:
            found.steps.check(self.steps)
        if found.uses_encoder and not self.encoder:
            raise ValueError(f"{found.label}: choose an encoder")
        if found.uses_passes:
            ITERATIONS.check(self.iterations)

    @property
    def cost(self) -> float:
        """Rough relative cost, to split the progress bar between methods."""
        found = method(self.kind)
        return float(self.steps if found.steps else 0) + 5.0 * self.iterations * found.uses_passes


@dataclass
class Job:
    """What every method of one comparison shares. `encoded(spec, progress)` runs the spec's encoder
    once per (encoder, iterations), so an encoder used alone and as a hybrid start runs once; `stats`
    are G's w_avg and w_std where the optimisers start (each computes them when None); `schedule` is
    how every optimiser spends its steps (full resolution throughout, or coarse-to-fine);
    `hyperstyle(progress)` gives the HyperStyle made for G (None: HyperStyle cannot run)."""

    G: torch.nn.Module
    target: torch.Tensor  # [1, C, R, R] in [-1, 1]
    lpips_net: torch.nn.Module
    encoded: Callable[[MethodSpec, Progress], InversionResult]
    c: Optional[torch.Tensor] = None
    force_fp32: bool = True
    should_stop: ShouldStop = None
    stats: Optional[WStats] = None
    schedule: Schedule = Schedule()
    hyperstyle: Optional[Callable[[Progress], HyperStyleModel]] = None


Runner = Callable[[Job, MethodSpec, Progress], "InversionResult"]


@dataclass(frozen=True)
class Method:
    """An inversion method: `kind` is its name in the API and CLI, `label` what the method list shows,
    `short` what results are tagged with (table rows, legend entries, captions: short enough to fit)."""

    kind: str
    label: str
    short: str
    steps: Optional[Budget]  # optimisation steps; None for a method that only encodes
    uses_encoder: bool
    run: Runner
    rounds: int = 1  # how many times the steps are run (PTI: the pivot's, then the tuning's)
    iterative: bool = False  # refines in passes without an encoder of the list (HyperStyle)

    @property
    def uses_passes(self) -> bool:
        """Whether the passes setting (ITERATIONS) applies: the encoders (ReStyle) and HyperStyle."""
        return self.uses_encoder or self.iterative


def _run_w(job: Job, spec: MethodSpec, progress: Progress) -> InversionResult:
    from stylecore.inversion.optimize import ProjectorConfig, project_w

    return project_w(job.G, job.target, job.lpips_net, ProjectorConfig(steps=int(spec.steps)), c=job.c,
                     force_fp32=job.force_fp32, progress=progress, should_stop=job.should_stop, stats=job.stats,
                     schedule=job.schedule)


def _run_wplus(job: Job, spec: MethodSpec, progress: Progress) -> InversionResult:
    from stylecore.inversion.optimize import WPlusConfig, project_wplus

    return project_wplus(job.G, job.target, job.lpips_net, WPlusConfig(steps=int(spec.steps)), c=job.c,
                         force_fp32=job.force_fp32, progress=progress, should_stop=job.should_stop,
                         stats=job.stats, schedule=job.schedule)


def _run_encoder(job: Job, spec: MethodSpec, progress: Progress) -> InversionResult:
    return job.encoded(spec, progress)


def _run_hybrid(job: Job, spec: MethodSpec, progress: Progress) -> InversionResult:
    from stylecore.inversion.optimize import WPlusConfig, hybrid

    start = job.encoded(spec, progress)
    return hybrid(job.G, job.target, job.lpips_net, start, WPlusConfig(steps=int(spec.steps)),
                  force_fp32=job.force_fp32, progress=progress, should_stop=job.should_stop, schedule=job.schedule)


def _run_pti(job: Job, spec: MethodSpec, progress: Progress) -> InversionResult:
    from stylecore.inversion.optimize import ProjectorConfig, project_w
    from stylecore.inversion.pti import PtiConfig, tune
    from stylecore.progress import scaled

    pivot = project_w(job.G, job.target, job.lpips_net, ProjectorConfig(steps=int(spec.steps)), c=job.c,
                      force_fp32=job.force_fp32, progress=scaled(progress, 0.0, 0.5), should_stop=job.should_stop,
                      stats=job.stats, schedule=job.schedule)
    if pivot.cancelled:
        return pivot
    return tune(job.G, job.target, job.lpips_net, pivot, PtiConfig(steps=int(spec.steps)), force_fp32=job.force_fp32,
                progress=scaled(progress, 0.5, 1.0), should_stop=job.should_stop, schedule=job.schedule)


def _run_hyperstyle(job: Job, spec: MethodSpec, progress: Progress) -> InversionResult:
    from stylecore.networks.digest import decoder_match_note
    from stylecore.inversion.hyperstyle import invert, on_decoder
    from stylecore.progress import scaled

    if job.hyperstyle is None:
        raise ValueError("HyperStyle needs the HyperStyle network made for this generator")
    model = job.hyperstyle(scaled(progress, 0.0, 0.2))
    result = invert(on_decoder(model, job.G), job.target, spec.iterations, scaled(progress, 0.2, 1.0),
                    job.should_stop)
    matched = decoder_match_note("HyperStyle", model.decoder, job.G) if model.decoder is not job.G else ""
    notes = [result.note, matched, *model.notes]
    result.note = "; ".join(note for note in notes if note)
    return result


METHODS: dict[str, Method] = {m.kind: m for m in (
    Method("w", "W optimisation (official projector)", "W",
           Budget("W steps", 1, MAX_STEPS, default=300, full=1000, note="official: 1000"),
           uses_encoder=False, run=_run_w),
    Method("wplus", "W+ optimisation (Image2StyleGAN)", "W+",
           Budget("W+ steps", 1, MAX_STEPS, default=300, full=1000, note="paper: 5000"),
           uses_encoder=False, run=_run_wplus),
    Method("encoder", "Encoder (pSp / e4e / ReStyle)", "encoder", None, uses_encoder=True, run=_run_encoder),
    Method("hybrid", "Hybrid (encoder + W+ optimisation)", "hybrid",
           Budget("Hybrid steps", 1, MAX_STEPS, default=100, full=100), uses_encoder=True, run=_run_hybrid),
    Method("pti", "PTI (W pivot + pivotal tuning of the generator)", "PTI",
           Budget("PTI steps", 1, MAX_STEPS, default=100, full=350,
                  note="the W pivot and the tuning each take this many; paper: 450 + 350"),
           uses_encoder=False, run=_run_pti, rounds=2),
    Method("hyperstyle", "HyperStyle (W encoder + predicted weight offsets)", "HyperStyle", None, uses_encoder=False,
           run=_run_hyperstyle, iterative=True),
)}
METHOD_KINDS = tuple(METHODS)


def method(name: str) -> Method:
    """The method a kind ('w') or a label names."""
    found = METHODS.get(name) or next((m for m in METHODS.values() if m.label == name), None)
    if found is None:
        raise ValueError(f"unknown inversion method {name!r}: use one of {', '.join(METHOD_KINDS)}")
    return found


def choose(names: Sequence[str], steps: Mapping[str, Any], encoder: str = "",
           iterations: Any = ITERATIONS.default) -> list[MethodSpec]:
    """The specs for the methods named (kinds or labels; each once, in order), every budget checked:
    `steps` maps a method's kind to its steps, `encoder` and `iterations` serve the encoder methods."""
    if not names:
        raise ValueError("tick at least one method")
    chosen = dict.fromkeys(method(name) for name in names)
    return [MethodSpec(kind=m.kind, steps=m.steps.check(steps.get(m.kind)) if m.steps else 0,
                       encoder=str(encoder or "").strip() if m.uses_encoder else "",
                       iterations=ITERATIONS.check(iterations) if m.uses_passes else 1)
            for m in chosen]


def opening(device_type: str, has_encoder: bool) -> tuple[list[str], dict[str, int]]:
    """The methods the tab opens with, and their steps. On a CPU, where one 1024 px step takes seconds,
    a model with an encoder made for it opens on the encoder and a short hybrid; otherwise W and W+
    with their quick defaults (the tab's estimate says what they cost)."""
    steps = {m.kind: m.steps.default for m in METHODS.values() if m.steps is not None}
    if device_type == "cpu" and has_encoder:
        return ["encoder", "hybrid"], {**steps, "hybrid": CPU_HYBRID_STEPS}
    return ["w", "wplus"], steps
