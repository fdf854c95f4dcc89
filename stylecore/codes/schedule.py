"""Coarse-to-fine optimisation of codes: the early steps of an optimisation run on a partial synthesis that
stops at 256 px, the last ones at full resolution. Shared by inversion and StyleCLIP's latent optimisation
(both optimise W+ codes through the synthesis network), so it lives with the codes.

Why: on a CPU one step at 1024 px is a forward and a backward pass through every block; the blocks above
256 px cost about half of it, yet LPIPS looks at 256 px anyway. A StyleGAN2 with the skip architecture
(every released configuration) has a valid image after each block (`SynthesisNetwork.forward(stop_at=)`),
so the early steps fit that image to the target downsampled to match, and the last steps at full
resolution fit the finest layers and details. StyleGAN3 has no intermediate image: it always runs
full. The names are what the tab, the API and the CLI accept; "auto" is coarse-to-fine on a CPU and
full on a GPU, where a step is cheap and the published schedules are the better reference.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Union

if TYPE_CHECKING:  # the CLI builds its parser from these names: no torch at import
    import torch

__all__ = ["COARSE_TO_FINE", "FULL", "SCHEDULES", "Schedule", "default_schedule", "schedule_named", "coarse_size",
           "Stages"]

COARSE_TO_FINE = "coarse-to-fine"
FULL = "full"
SCHEDULES = (COARSE_TO_FINE, FULL)


@dataclass(frozen=True)
class Schedule:
    """How a run splits its steps: the first `coarse_fraction` of them at `coarse_resolution` (at most
    half the output's) with the learning rate times `coarse_lr_scale`, the rest at full resolution."""

    name: str = FULL
    coarse_resolution: int = 256
    coarse_fraction: float = 0.9
    coarse_lr_scale: float = 2.0

    @property
    def coarse(self) -> bool:
        return self.name == COARSE_TO_FINE


def default_schedule(device: Union[str, torch.device]) -> str:
    """Coarse-to-fine on a CPU (where the big blocks dominate a step), full on a GPU."""
    return COARSE_TO_FINE if str(device).split(":")[0] == "cpu" else FULL


def schedule_named(name: Optional[str], device: Union[str, torch.device]) -> Schedule:
    """The schedule a user names: 'coarse-to-fine', 'full', or 'auto' / empty for the device's default."""
    chosen = str(name or "auto").strip().lower()
    if chosen == "auto":
        chosen = default_schedule(device)
    if chosen not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)} or auto, got {name!r}")
    return Schedule(chosen)


def coarse_size(G: torch.nn.Module, schedule: Schedule) -> Optional[int]:
    """The resolution of the coarse phase on G, or None when every step runs at full resolution (a full
    schedule, or a network without intermediate images such as StyleGAN3)."""
    if not schedule.coarse:
        return None
    size = min(schedule.coarse_resolution, G.img_resolution // 2)
    return size if size in getattr(G.synthesis, "partial_resolutions", ()) else None


class Stages:
    """One run's plan: which steps are coarse, the synthesis arguments and learning-rate scale of each
    step, the target at each step's resolution, and a note that tells the user what ran."""

    def __init__(self, G: torch.nn.Module, schedule: Schedule, steps: int):
        self.size = coarse_size(G, schedule)
        self.full = G.img_resolution
        self.schedule = schedule
        self.coarse_steps = 0 if self.size is None else min(steps - 1, round(steps * schedule.coarse_fraction))
        self.steps = steps

    def coarse(self, step: int) -> bool:
        return step < self.coarse_steps

    def resolution(self, step: int) -> int:
        return self.size if self.coarse(step) else self.full

    def synthesis_kwargs(self, step: int) -> dict:
        """`stop_at` for a coarse step, nothing for a full one."""
        return {"stop_at": self.size} if self.coarse(step) else {}

    def lr_scale(self, step: int) -> float:
        return self.schedule.coarse_lr_scale if self.coarse(step) else 1.0

    def target(self, target: torch.Tensor) -> torch.Tensor:
        """`target` area-downsampled to the coarse resolution (the pixel term's target there)."""
        import torch.nn.functional as F

        return F.interpolate(target, size=(self.size, self.size), mode="area") if self.size else target

    def note(self, label: str) -> str:
        """What ran, for the result's notes; '' for a plain full run."""
        if self.coarse_steps:
            return (f"{label}: coarse-to-fine, {self.coarse_steps} of {self.steps} steps at {self.size} px, "
                    f"the last {self.steps - self.coarse_steps} at {self.full} px")
        if self.schedule.coarse:
            why = "a single step" if self.steps == 1 and self.size else "this network has no intermediate image"
            return f"{label}: every step at full resolution ({why})"
        return ""
