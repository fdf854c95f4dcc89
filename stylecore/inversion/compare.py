"""Run several inversion methods on one prepared image and measure each the same way.

The methods and their budgets are the registry's (stylecore.inversion.methods). Encoders are resolved
by an `EncoderResolver`: `managed_encoders(manager)` keeps them with the manager's other networks,
`load_encoder_run` loads one for a single use; tests and scripts can plug in any function that maps an
image to W+ codes.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional, Sequence, Union

import numpy as np
import torch

from stylecore.codes.generate import to_uint8
from stylecore.codes.latents import seeds_to_ws
from stylecore.inversion.hyperstyle_sources import check_hyperstyle, managed_hyperstyle
from stylecore.inversion.methods import Job, MethodSpec, method
from stylecore.inversion.optimize import (InversionResult, ProjectorConfig, WStats, codes_result, target_tensor,
                                          w_stats)
from stylecore.codes.schedule import Schedule, schedule_named
from stylecore.networks.digest import decoder_match_note
from stylecore.perception.metrics import image_metrics, shared_lpips
from stylecore.progress import Progress, ShouldStop, from_bytes, scaled, stop_requested

if TYPE_CHECKING:
    from stylecore.engine.manager import LoadedModel, ModelManager
    from stylecore.inversion.encoders import EncoderModel
    from stylecore.inversion.hyperstyle import HyperStyleModel

__all__ = ["EncoderRun", "EncoderResolver", "Comparison", "load_encoder_model", "load_encoder_run",
           "managed_encoders", "check_encoder", "load_networks", "compare_on", "seed_target", "code_error",
           "run_methods", "result_tensor", "save_result", "save_weights"]

# An encoder as the comparison needs it: (target [1, 3, R, R] in [-1, 1], iterations, progress)
# -> W+ codes after each pass ([1, num_ws, w_dim] each; one entry for single-pass encoders). A run that
# also has a `decoder` attribute (the network the encoder was trained with) gets its results checked
# against the generator that renders them.
EncoderRun = Callable[[torch.Tensor, int, Progress], list[torch.Tensor]]
EncoderResolver = Callable[[str, Progress], EncoderRun]


def load_encoder_model(encoder_id: str, progress: Progress = None,
                       device: torch.device = torch.device("cpu")) -> EncoderModel:
    """An encoder by zoo id (downloaded on first use) or local .pt path, loaded on `device`."""
    from stylecore.inversion.encoder_cards import fetch_encoder
    from stylecore.inversion.encoders import load_encoder

    local = Path(encoder_id).expanduser()
    path = local if local.is_file() else fetch_encoder(encoder_id, progress=from_bytes(progress))
    return load_encoder(path, device=device)


def load_encoder_run(encoder_id: str, progress: Progress = None,
                     device: torch.device = torch.device("cpu")) -> EncoderRun:
    """The resolver for a single use: the encoder is loaded now and dropped after the comparison."""
    return _EncoderModelRun(load_encoder_model(encoder_id, progress, device))


def managed_encoders(manager: ModelManager, device: Optional[torch.device] = None) -> EncoderResolver:
    """The resolver that keeps each encoder in `manager` (key ("encoder", id, device); a local file's
    modification time joins the key, so a replaced checkpoint is read again) under its memory budget."""
    device = device or manager.device

    def resolve(encoder_id: str, progress: Progress) -> EncoderRun:
        local = Path(encoder_id).expanduser()
        key = ("encoder", encoder_id, str(device)) + ((local.stat().st_mtime,) if local.is_file() else ())
        return _EncoderModelRun(manager.resource(key, lambda: load_encoder_model(encoder_id, progress, device)))

    return resolve


@dataclass
class _EncoderModelRun:
    """A loaded encoder as an `EncoderRun`, carrying the decoder it was trained with."""

    model: EncoderModel

    @property
    def decoder(self) -> torch.nn.Module:
        return self.model.decoder

    def __call__(self, target: torch.Tensor, iterations: int, step_progress: Progress) -> list[torch.Tensor]:
        from stylecore.inversion import encoders

        if self.model.iterative:
            def on_step(done: int, total: int, message: str) -> None:
                if step_progress is not None:
                    step_progress(done / total, message)

            return [s.codes for s in encoders.restyle(self.model, target, iterations, progress=on_step)]
        return [encoders.encode(self.model, target)]


def result_tensor(result: InversionResult) -> torch.Tensor:
    """A result's uint8 image as [1, 3, H, W] in [-1, 1], for the metrics."""
    return torch.from_numpy(np.ascontiguousarray(result.image)).permute(2, 0, 1)[None].float() / 127.5 - 1


def _measure(result: InversionResult, target: torch.Tensor, lpips_net: torch.nn.Module) -> InversionResult:
    pred = result_tensor(result).to(target.device)
    result.metrics = image_metrics(lpips_net, pred, target)
    return result


def run_methods(G: torch.nn.Module, image: np.ndarray, methods: Sequence[MethodSpec], lpips_net: torch.nn.Module,
                resolve_encoder: Optional[EncoderResolver] = None, c: Optional[torch.Tensor] = None,
                force_fp32: bool = True, progress: Progress = None, should_stop: ShouldStop = None,
                stats: Optional[WStats] = None, schedule: Schedule = Schedule(),
                resolve_hyperstyle: Optional[Callable[[Progress], HyperStyleModel]] = None) -> list[InversionResult]:
    """Invert `image` (uint8 [R, R, 3], already aligned) with each method in turn; each result gets
    LPIPS / PSNR / MSE against the target. An encoder used both alone and as a hybrid start runs once.
    Stopping ends the running method early (its partial result is kept) and skips the rest.
    Without `resolve_encoder`, encoders are loaded for this call only (`load_encoder_run`); without
    `stats` (G's `w_stats`), each optimiser computes them. `schedule`: how the optimisers spend their
    steps (full resolution by default; coarse-to-fine runs the early ones at 256 px). `resolve_hyperstyle`
    gives the HyperStyle made for G (without it, HyperStyle cannot run)."""
    if not methods:
        raise ValueError("choose at least one inversion method")
    for spec in methods:
        spec.validate()
    device = next(G.parameters()).device
    lpips_net = lpips_net.to(device)
    target = target_tensor(image, G, device)
    resolve = resolve_encoder or (lambda ident, prog: load_encoder_run(ident, prog, device))
    encoded: dict[tuple[str, int], InversionResult] = {}

    def encode(spec: MethodSpec, prog: Progress) -> InversionResult:
        key = (spec.encoder, spec.iterations)
        if key not in encoded:
            encoder = resolve(spec.encoder, prog)
            start = time.perf_counter()
            passes = encoder(target, spec.iterations, prog)
            if not passes:
                raise ValueError(f"encoder {spec.encoder} returned no codes")
            label = Path(spec.encoder).name if spec.encoder.endswith((".pt", ".pth")) else spec.encoder
            name = f"encoder {label}" + (f" ({len(passes)} iterations)" if len(passes) > 1 else "")
            result = codes_result(G, passes[-1], name, time.perf_counter() - start, force_fp32,
                                  iterations=passes if len(passes) > 1 else ())
            result.note = decoder_match_note(f"encoder {label}", getattr(encoder, "decoder", None), G)
            encoded[key] = _measure(result, target, lpips_net)
        return encoded[key]

    job = Job(G, target, lpips_net, encode, c=c, force_fp32=force_fp32, should_stop=should_stop, stats=stats,
              schedule=schedule, hyperstyle=resolve_hyperstyle)
    total = sum(max(s.cost, 1.0) for s in methods)
    done = 0.0
    results: list[InversionResult] = []
    for spec in methods:
        if stop_requested(should_stop):
            break
        weight = max(spec.cost, 1.0)
        result = method(spec.kind).run(job, spec, scaled(progress, done / total, (done + weight) / total))
        results.append(_measure(result, target, lpips_net))
        done += weight
    return results


def check_encoder(encoder: str, G: torch.nn.Module) -> None:
    """Refuse an unknown encoder, or a zoo encoder made for another resolution, before downloading it
    (a local checkpoint is checked once its codes are known)."""
    from stylecore.inversion.encoder_cards import encoder_zoo

    zoo = encoder_zoo()
    if encoder not in zoo:
        if len(encoder) > 1024 or not encoder.endswith((".pt", ".pth")) or not Path(encoder).is_file():
            raise ValueError(f"unknown encoder {encoder[:60]!r}: choose one of {', '.join(zoo.ids())} "
                             "or give the path of a local .pt checkpoint")
        return
    card = zoo.get(encoder)
    if card.resolution and card.resolution != G.img_resolution:
        raise ValueError(f"encoder {encoder} was trained for a {card.resolution}x{card.resolution} generator; this "
                         f"model is {G.img_resolution}x{G.img_resolution}: choose a matching model or encoder")


def _check_networks(model: LoadedModel, methods: Sequence[MethodSpec]) -> None:
    """Refuse an encoder or a HyperStyle that does not fit the model, before anything is downloaded."""
    for spec in methods:
        if spec.encoder:
            check_encoder(spec.encoder, model.G)
        if spec.kind == "hyperstyle":
            check_hyperstyle(model.card.id)


def load_networks(manager: ModelManager, model: LoadedModel, methods: Sequence[MethodSpec],
                  progress: Progress = None) -> None:
    """Check the methods' encoders and HyperStyle against the model, then download and load them and
    LPIPS into `manager` (e.g. before a ZeroGPU slot is taken)."""
    _check_networks(model, methods)
    shared_lpips(manager, from_bytes(progress))
    resolve = managed_encoders(manager)
    for encoder in dict.fromkeys(spec.encoder for spec in methods if spec.encoder):
        resolve(encoder, progress)
    if any(spec.kind == "hyperstyle" for spec in methods):
        managed_hyperstyle(manager, model, progress)


@dataclass
class Comparison:
    """One comparison's results (one per method that ran) and what the caller must know to read them."""

    results: list[InversionResult]
    planned: int  # methods asked for
    random_lpips: bool  # LPIPS on a random VGG16 backbone: values not comparable with published ones
    lpips_note: str = ""  # why LPIPS is random (asked for, or the pretrained backbone could not be downloaded)

    @property
    def stopped(self) -> bool:
        return any(r.cancelled for r in self.results) or len(self.results) < self.planned

    @property
    def notes(self) -> list[str]:
        """The results' notes (and their encoder starts'), each once, then the LPIPS note when LPIPS is random."""
        notes = [r.note for r in self.results] + [r.start.note for r in self.results if r.start]
        notes.append(self.lpips_note if self.random_lpips else "")
        return list(dict.fromkeys(note for note in notes if note))


def compare_on(manager: ModelManager, model: LoadedModel, image: np.ndarray, methods: Sequence[MethodSpec],
               progress: Progress = None, should_stop: ShouldStop = None,
               schedule: Optional[str] = "auto") -> Comparison:
    """`run_methods` on a managed model, with the LPIPS network, encoders and w statistics the manager keeps;
    `schedule` names how the optimisers spend their steps: 'coarse-to-fine', 'full', or 'auto' (coarse-to-fine
    on a CPU, full on a GPU)."""
    chosen = schedule_named(schedule, model.device)
    if model.G.c_dim:
        raise ValueError("inversion of conditional (class-labelled) models is not supported")
    _check_networks(model, methods)
    lpips_net = shared_lpips(manager, from_bytes(progress))
    samples = ProjectorConfig().w_avg_samples
    stats = manager.resource(("w_stats", model.card.id, samples), lambda: w_stats(model.G, samples))
    results = run_methods(model.G, image, methods, lpips_net, managed_encoders(manager, model.device),
                          force_fp32=model.force_fp32, progress=progress, should_stop=should_stop, stats=stats,
                          schedule=chosen, resolve_hyperstyle=lambda prog: managed_hyperstyle(manager, model, prog))
    return Comparison(results, len(methods), lpips_net.random_backbone, lpips_net.backbone_note)


@torch.no_grad()
def seed_target(G: torch.nn.Module, seed: int, truncation_psi: float = 0.7,
                force_fp32: bool = True) -> tuple[np.ndarray, torch.Tensor]:
    """A seed's image as an RGB uint8 target, and its true code [1, num_ws, w_dim]: inverting it shows
    how close each method gets to a code that is known."""
    ws = seeds_to_ws(G, [seed], truncation_psi, device=next(G.parameters()).device)
    image = to_uint8(G.synthesis(ws, noise_mode="const", force_fp32=force_fp32))[0]
    return (np.repeat(image[..., None], 3, axis=-1) if image.ndim == 2 else image), ws


def code_error(result: InversionResult, true_ws: torch.Tensor) -> float:
    """Mean distance per layer between a result's codes and the true ones."""
    return float((result.ws - true_ws.cpu()).norm(dim=-1).mean())


def save_result(path: Union[str, Path], result: InversionResult, tuned_digest: str = "") -> Path:
    """Write a result's codes as .npz (key 'w' [1, num_ws, w_dim], the projector's layout, readable by
    the editing tab) with the method, latent space and metrics; the W projection's optimised noise
    maps are stored as 'noise:<buffer name>', and a PTI or HyperStyle code names its tuned weights by
    their digest (`tuned_digest` when the caller has it already, e.g. from `engine.tuned.keep_tuned`)."""
    from stylecore.codes.latents import save_latents

    meta: dict = {"method": result.method, "space": result.space, "steps": result.steps,
                  **{k: float(v) for k, v in result.metrics.items()}}
    meta.update({f"noise:{name}": tensor.numpy() for name, tensor in result.noise.items()})
    if result.weights:  # PTI / HyperStyle: which tuned weights draw this code (stylecore.engine.tuned)
        from stylecore.engine.tuned import TUNED_FIELD, weights_digest

        meta[TUNED_FIELD] = tuned_digest or weights_digest(result.weights)
    return save_latents(path, result.ws, **meta)


def save_weights(path: Union[str, Path], result: InversionResult) -> Optional[Path]:
    """A PTI or HyperStyle result's tuned synthesis weights as .safetensors (the parameter names of the official
    StyleGAN2 synthesis network, `synthesis.` prefixed), or None for a result without its own weights."""
    if not result.weights:
        return None
    from safetensors.torch import save_file

    path = Path(path)
    save_file({f"synthesis.{name}": w.detach().cpu().contiguous() for name, w in result.weights.items()}, str(path),
              metadata={"method": result.method, "space": result.space})
    return path
