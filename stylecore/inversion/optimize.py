"""GAN inversion by optimisation: find the code whose image matches a target.

* `project_w`: the official StyleGAN2-ADA projector's algorithm (reference/stylegan_formats.md §6):
  one w in W, started at w_avg, Adam with its learning-rate ramp, decaying w noise, optimised
  noise maps with the multi-scale autocorrelation regulariser, LPIPS(VGG16) distance at 256 px.
* `project_wplus`: Image2StyleGAN: one code per layer (W+), from w_avg, pixel MSE + perceptual loss.
* `hybrid`: the same W+ optimisation started from an encoder's codes.

Everything is a plain function over a generator that is never modified: the optimised noise maps
live in a private view of the synthesis network (stylecore.networks.private), gradients are taken
only for the optimised tensors, so a model shared by concurrent requests stays untouched. Each
function reports progress, can be stopped between steps (`should_stop`), and returns codes, image,
loss curve and time.

Each also takes a `Schedule` (stylecore.codes.schedule): full (the published algorithm, the default
here) or coarse-to-fine, whose early steps run on the 256 px skip image of a StyleGAN2.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from stylecore.codes.generate import to_uint8
from stylecore.codes.schedule import Schedule, Stages
from stylecore.networks.private import with_tensors
from stylecore.perception.metrics import LpipsTarget
from stylecore.progress import Progress, ShouldStop, stop_requested

__all__ = ["ProjectorConfig", "WPlusConfig", "InversionResult", "WStats", "StepLog", "Distances", "check_target",
           "target_tensor", "w_stats", "projector_lr", "projector_w_noise_scale", "noise_regularization", "synthesize",
           "render", "project_w", "project_wplus", "hybrid", "codes_result"]


@dataclass(frozen=True)
class ProjectorConfig:
    """The official projector's constants; only `steps` is usually changed."""

    steps: int = 1000
    w_avg_samples: int = 10000
    initial_learning_rate: float = 0.1
    initial_noise_factor: float = 0.05
    lr_rampdown_length: float = 0.25
    lr_rampup_length: float = 0.05
    noise_ramp_length: float = 0.75
    regularize_noise_weight: float = 1e5
    optimize_noise: bool = True
    seed: int = 303  # the projector script's numpy/torch seed


@dataclass(frozen=True)
class WPlusConfig:
    """Image2StyleGAN's settings (Adam lr 0.01, MSE and perceptual loss weighted 1:1; the paper runs
    5000 steps, our default is 1000)."""

    steps: int = 1000
    learning_rate: float = 0.01
    mse_weight: float = 1.0
    perceptual_weight: float = 1.0
    w_avg_samples: int = 10000


@dataclass
class InversionResult:
    """One method's reconstruction of one image."""

    method: str
    space: str  # "W" or "W+"
    ws: torch.Tensor  # [1, num_ws, w_dim] on the CPU
    image: np.ndarray  # [H, W, C] uint8
    losses: list[float] = field(default_factory=list)  # one per step (optimisation methods)
    seconds: float = 0.0
    steps: int = 0
    noise: dict[str, torch.Tensor] = field(default_factory=dict)  # optimised noise maps (project_w)
    iterations: list[np.ndarray] = field(default_factory=list)  # ReStyle: the image after each pass
    cancelled: bool = False
    resolutions: list[int] = field(default_factory=list)  # the synthesis resolution of each step
    metrics: dict[str, float] = field(default_factory=dict)  # filled by invert_compare
    start: Optional["InversionResult"] = None  # hybrid: the encoder result it started from
    note: str = ""  # what the user must know to read the result (e.g. a generator the encoder was not made for)
    weights: dict[str, torch.Tensor] = field(default_factory=dict)  # PTI: tuned synthesis parameters to render ws with


# ---------------------------------------------------------------------------------------------
# helpers


def target_tensor(image: np.ndarray, G: torch.nn.Module, device: Optional[torch.device] = None) -> torch.Tensor:
    """An RGB uint8 image as the [1, C, R, R] target in [-1, 1] (resized to the generator's R)."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"the target must be an RGB uint8 image [H, W, 3], got {arr.dtype} {list(arr.shape)}")
    R = G.img_resolution
    if arr.shape[:2] != (R, R):
        arr = np.asarray(Image.fromarray(arr).resize((R, R), Image.Resampling.LANCZOS))
    if G.img_channels == 1:
        arr = arr.mean(-1, keepdims=True)
    t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)[None].float() / 127.5 - 1
    return t.to(device or next(G.parameters()).device)


WStats = tuple[torch.Tensor, float]  # w_avg [1, 1, w_dim] and the scalar w_std


@torch.no_grad()
def w_stats(G: torch.nn.Module, samples: int = 10000, c: Optional[torch.Tensor] = None) -> WStats:
    """w_avg [1, 1, w_dim] and the scalar w_std of `samples` mapped z (RandomState(123), one batch),
    as the official projector computes them. Not kept here: a caller that inverts often passes them
    in (`stats`), e.g. from the model manager."""
    device = next(G.parameters()).device
    z = torch.from_numpy(np.random.RandomState(123).randn(samples, G.z_dim)).to(device=device, dtype=torch.float32)
    cs = None if c is None else c.to(device).expand(samples, -1)
    w = G.mapping(z, cs)[:, :1, :].float()
    w_avg = w.mean(0, keepdim=True)
    w_std = float(((w - w_avg).square().sum() / samples) ** 0.5)
    return w_avg, w_std


def projector_lr(t: float, cfg: ProjectorConfig = ProjectorConfig()) -> float:
    """The projector's learning rate at progress t in [0, 1): cosine ramp-down, linear ramp-up."""
    rampdown = min(1.0, (1.0 - t) / cfg.lr_rampdown_length)
    rampdown = 0.5 - 0.5 * math.cos(rampdown * math.pi)
    rampup = min(1.0, t / cfg.lr_rampup_length)
    return cfg.initial_learning_rate * rampdown * rampup


def projector_w_noise_scale(t: float, w_std: float, cfg: ProjectorConfig = ProjectorConfig()) -> float:
    """Std of the noise added to w at progress t: decays quadratically to 0 at noise_ramp_length."""
    return w_std * cfg.initial_noise_factor * max(0.0, 1.0 - t / cfg.noise_ramp_length) ** 2


def noise_regularization(noises: Sequence[torch.Tensor]) -> torch.Tensor:
    """Sum over noise maps and their 2x-downsampled pyramid (down to 8 px) of the squared mean
    products with the map shifted by one pixel in x and in y: penalises spatial correlation, so the
    noise cannot carry the image."""
    total = torch.zeros((), device=noises[0].device) if noises else torch.zeros(())
    for noise in noises:
        n = noise.reshape(1, 1, noise.shape[-2], noise.shape[-1])
        while True:
            total = total + (n * torch.roll(n, shifts=1, dims=3)).mean() ** 2
            total = total + (n * torch.roll(n, shifts=1, dims=2)).mean() ** 2
            if n.shape[2] <= 8:
                break
            n = F.avg_pool2d(n, kernel_size=2)
    return total


def _noise_buffers(G: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: buf for name, buf in G.synthesis.named_buffers() if "noise_const" in name}


def synthesize(synthesis: torch.nn.Module, ws: torch.Tensor, force_fp32: bool = True,
               stop_at: Optional[int] = None) -> torch.Tensor:
    """A synthesis network's image of `ws` with its constant noise: [N, C, R, R], or the partial image at
    `stop_at` px (a coarse step)."""
    return synthesis(ws, noise_mode="const", force_fp32=force_fp32, **({"stop_at": stop_at} if stop_at else {}))


def render(G: torch.nn.Module, ws: torch.Tensor, tensors: Optional[dict[str, torch.Tensor]] = None,
           force_fp32: bool = True, stop_at: Optional[int] = None) -> torch.Tensor:
    """G.synthesis(ws), with some parameters or buffers (tuned weights, noise maps) replaced in a private
    view for this call only (loops make the view once: with_tensors + synthesize)."""
    synthesis = with_tensors(G.synthesis, tensors) if tensors else G.synthesis
    return synthesize(synthesis, ws, force_fp32, stop_at)


class StepLog:
    """One optimisation loop's record (loss and synthesis resolution per step, whether it was stopped),
    its progress at most ~10 times a second, and the stop check."""

    def __init__(self, label: str, steps: int, progress: Progress, should_stop: ShouldStop):
        self.label, self.steps, self.progress, self.should_stop = label, steps, progress, should_stop
        self.last = 0.0
        self.losses: list[float] = []
        self.resolutions: list[int] = []
        self.cancelled = False

    def record(self, step: int, loss: torch.Tensor, resolution: int) -> bool:
        """Note a finished step; True when the loop should stop now (the user asked to)."""
        self.losses.append(float(loss.detach()))
        self.resolutions.append(resolution)
        now = time.perf_counter()
        if self.progress is not None and (now - self.last > 0.1 or step + 1 == self.steps):
            self.last = now
            self.progress((step + 1) / self.steps, f"{self.label}: step {step + 1} of {self.steps} at {resolution} "
                                                  f"px, loss {self.losses[-1]:.4f}")
        self.cancelled = stop_requested(self.should_stop)
        return self.cancelled


class Distances:
    """LPIPS to the target at each resolution a run's steps use (the coarse one from the target
    area-downsampled to match), and the pixel target there."""

    def __init__(self, lpips_net: torch.nn.Module, target: torch.Tensor, stages: Stages):
        small = stages.target(target)
        self.targets = {target.shape[-1]: target, small.shape[-1]: small}
        self.lpips = {size: LpipsTarget(lpips_net, t) for size, t in self.targets.items()}

    def lpips_to(self, img: torch.Tensor) -> torch.Tensor:
        return self.lpips[img.shape[-1]].distance(img)

    def mse_to(self, img: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(img.float(), self.targets[img.shape[-1]])


def check_target(G: torch.nn.Module, target: torch.Tensor, steps: int) -> None:
    if G.architecture == "stylenerf":
        raise ValueError("inversion works with StyleGAN2 and StyleGAN3 models; StyleNeRF models are not supported")
    R = G.img_resolution
    if tuple(target.shape) != (1, G.img_channels, R, R):
        raise ValueError(f"the target must be [1, {G.img_channels}, {R}, {R}], got {list(target.shape)}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a whole number >= 1, got {steps!r}")


# ---------------------------------------------------------------------------------------------
# methods


def project_w(G: torch.nn.Module, target: torch.Tensor, lpips_net: torch.nn.Module,
              config: ProjectorConfig = ProjectorConfig(), c: Optional[torch.Tensor] = None, force_fp32: bool = True,
              progress: Progress = None, should_stop: ShouldStop = None,
              stats: Optional[WStats] = None, schedule: Schedule = Schedule()) -> InversionResult:
    """Project `target` ([1, C, R, R] in [-1, 1]) into W with the official projector's schedule,
    starting at w_avg (`stats`, from `w_stats` when not given); `schedule` may run the early steps coarse.

    Returns the final w broadcast to [1, num_ws, w_dim], the image rendered with the optimised noise
    maps (also returned, by buffer name), and LPIPS + weighted noise regulariser per step.
    """
    check_target(G, target, config.steps)
    start = time.perf_counter()
    device = target.device
    gen = torch.Generator(device=device).manual_seed(config.seed)
    w_avg, w_std = stats if stats is not None else w_stats(G, config.w_avg_samples, c)
    w_opt = w_avg.detach().to(device).clone().requires_grad_(True)
    noise = {}
    if config.optimize_noise:
        noise = {name: torch.randn(buf.shape, generator=gen, device=device).requires_grad_(True)
                 for name, buf in _noise_buffers(G).items()}
    params = [w_opt] + list(noise.values())
    synthesis = with_tensors(G.synthesis, noise)
    optimizer = torch.optim.Adam(params, betas=(0.9, 0.999), lr=config.initial_learning_rate)
    stages = Stages(G, schedule, config.steps)
    distances = Distances(lpips_net, target, stages)
    log = StepLog("W projection", config.steps, progress, should_stop)
    for step in range(config.steps):
        t = step / config.steps
        for group in optimizer.param_groups:
            group["lr"] = projector_lr(t, config) * stages.lr_scale(step)
        w_noise = torch.randn(w_opt.shape, generator=gen, device=device) * projector_w_noise_scale(t, w_std, config)
        ws = (w_opt + w_noise).repeat(1, G.num_ws, 1)
        img = synthesize(synthesis, ws, force_fp32, **stages.synthesis_kwargs(step))
        loss = distances.lpips_to(img).sum()
        if noise:
            loss = loss + config.regularize_noise_weight * noise_regularization(list(noise.values()))
        grads = torch.autograd.grad(loss, params)
        for p, g in zip(params, grads):
            p.grad = g
        optimizer.step()
        with torch.no_grad():  # renormalise each noise map to zero mean, unit variance
            for n in noise.values():
                n -= n.mean()
                n *= n.square().mean().rsqrt()
        if log.record(step, loss, stages.resolution(step)):
            break
    with torch.no_grad():
        ws = w_opt.detach().repeat(1, G.num_ws, 1)
        final_noise = {k: v.detach() for k, v in noise.items()}
        image = to_uint8(synthesize(synthesis, ws, force_fp32))[0]
    return InversionResult("W optimisation (projector)", "W", ws.cpu(), image, log.losses, time.perf_counter() - start,
                           len(log.losses), {k: v.cpu() for k, v in final_noise.items()}, cancelled=log.cancelled,
                           resolutions=log.resolutions, note=stages.note("W optimisation"))


def project_wplus(G: torch.nn.Module, target: torch.Tensor, lpips_net: torch.nn.Module,
                  config: WPlusConfig = WPlusConfig(), init_ws: Optional[torch.Tensor] = None,
                  c: Optional[torch.Tensor] = None, force_fp32: bool = True, progress: Progress = None,
                  should_stop: ShouldStop = None, method: str = "W+ optimisation (Image2StyleGAN)",
                  stats: Optional[WStats] = None, schedule: Schedule = Schedule()) -> InversionResult:
    """Optimise one code per layer (W+) against MSE + perceptual (LPIPS) loss, with Adam.

    Starts at w_avg on every layer (Image2StyleGAN; `stats`, from `w_stats` when not given), or at
    `init_ws` [1, num_ws, w_dim] (hybrid). `schedule` may run the early steps coarse (the pixel term
    then compares with the target downsampled to the coarse size).
    The noise maps stay the model's own.
    """
    check_target(G, target, config.steps)
    start = time.perf_counter()
    device = target.device
    if init_ws is None:
        w_avg, _ = stats if stats is not None else w_stats(G, config.w_avg_samples, c)
        init_ws = w_avg.repeat(1, G.num_ws, 1)
    if tuple(init_ws.shape) != (1, G.num_ws, G.w_dim):
        raise ValueError(f"the starting codes must be [1, {G.num_ws}, {G.w_dim}], got {list(init_ws.shape)}")
    ws_opt = init_ws.detach().to(device=device, dtype=torch.float32).clone().requires_grad_(True)
    optimizer = torch.optim.Adam([ws_opt], lr=config.learning_rate, betas=(0.9, 0.999), eps=1e-8)
    stages = Stages(G, schedule, config.steps)
    distances = Distances(lpips_net, target, stages)
    label = method.split(" (")[0]
    log = StepLog(label, config.steps, progress, should_stop)
    for step in range(config.steps):
        for group in optimizer.param_groups:
            group["lr"] = config.learning_rate * stages.lr_scale(step)
        img = render(G, ws_opt, None, force_fp32, **stages.synthesis_kwargs(step))
        loss = config.mse_weight * distances.mse_to(img) + config.perceptual_weight * distances.lpips_to(img).sum()
        (grad,) = torch.autograd.grad(loss, [ws_opt])
        ws_opt.grad = grad
        optimizer.step()
        if log.record(step, loss, stages.resolution(step)):
            break
    with torch.no_grad():
        ws = ws_opt.detach()
        image = to_uint8(render(G, ws, None, force_fp32))[0]
    return InversionResult(method, "W+", ws.cpu(), image, log.losses, time.perf_counter() - start, len(log.losses),
                           cancelled=log.cancelled, resolutions=log.resolutions, note=stages.note(label))


def codes_result(G: torch.nn.Module, ws: torch.Tensor, method: str, seconds: float = 0.0,
                 force_fp32: bool = True, iterations: Sequence[torch.Tensor] = ()) -> InversionResult:
    """An encoder's codes as a result: rendered with G (and each ReStyle pass for the strip)."""
    device = next(G.parameters()).device
    ws = ws.detach().to(device=device, dtype=torch.float32)
    if ws.ndim == 2:
        ws = ws[None]
    if tuple(ws.shape) != (1, G.num_ws, G.w_dim):
        raise ValueError(f"{method} gave codes of shape {list(ws.shape)}, but this generator needs "
                         f"[1, {G.num_ws}, {G.w_dim}]: choose the encoder made for this model")
    with torch.no_grad():
        image = to_uint8(render(G, ws, None, force_fp32))[0]
        strip = [to_uint8(render(G, w.detach().to(device).reshape(ws.shape), None, force_fp32))[0]
                 for w in iterations]
    return InversionResult(method, "W+", ws.cpu(), image, [], seconds, len(iterations), iterations=strip)


def hybrid(G: torch.nn.Module, target: torch.Tensor, lpips_net: torch.nn.Module, start: InversionResult,
           config: WPlusConfig = WPlusConfig(steps=200), force_fp32: bool = True, progress: Progress = None,
           should_stop: ShouldStop = None, schedule: Schedule = Schedule()) -> InversionResult:
    """W+ optimisation for `config.steps` steps from an encoder's result (`start`); the time
    reported includes the encoder's."""
    result = project_wplus(G, target, lpips_net, config, init_ws=start.ws, force_fp32=force_fp32, progress=progress,
                           should_stop=should_stop, method=f"hybrid: {start.method} + W+ optimisation",
                           schedule=schedule)
    result.seconds += start.seconds
    result.start = start
    return result
