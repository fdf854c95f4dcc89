"""Run several inversion methods on one prepared image and measure each the same way.

A method is a `MethodSpec`: "w" (official projector), "wplus" (Image2StyleGAN), "encoder"
(pSp / e4e / ReStyle through stylecore.inversion.encoders) or "hybrid" (an encoder's codes refined by W+
optimisation). Encoders are resolved by an `EncoderResolver`, by default the encoder zoo, so tests
and scripts can plug in any function that maps an image to W+ codes.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch

from stylecore.inversion.optimize import (InversionResult, ProjectorConfig, Progress, ShouldStop, WPlusConfig, codes_result,
                              hybrid, project_w, project_wplus, target_tensor)
from stylecore.perception.metrics import image_metrics
from stylecore.networks.digest import synthesis_digest

__all__ = ["METHOD_KINDS", "MethodSpec", "EncoderRun", "EncoderResolver", "zoo_encoder", "run_methods",
           "result_tensor", "save_result", "decoder_match_note", "MAX_STEPS", "MAX_ITERATIONS"]

METHOD_KINDS = ("w", "wplus", "encoder", "hybrid")
MAX_STEPS = 10000
MAX_ITERATIONS = 20
# An encoder as the comparison needs it: (target [1, 3, R, R] in [-1, 1], iterations, progress)
# -> W+ codes after each pass ([1, num_ws, w_dim] each; one entry for single-pass encoders). A run that
# also has a `decoder` attribute (the network the encoder was trained with) gets its results checked
# against the generator that renders them.
EncoderRun = Callable[[torch.Tensor, int, Progress], list[torch.Tensor]]
EncoderResolver = Callable[[str, Progress], EncoderRun]


@dataclass(frozen=True)
class MethodSpec:
    """One method to run, with its budget: optimisation steps, or encoder iterations (ReStyle)."""

    kind: str
    steps: int = 0
    encoder: str = ""
    iterations: int = 1

    def validate(self) -> None:
        if self.kind not in METHOD_KINDS:
            raise ValueError(f"unknown inversion method {self.kind!r}: use one of {', '.join(METHOD_KINDS)}")
        if self.kind in ("w", "wplus", "hybrid") and not 1 <= int(self.steps) <= MAX_STEPS:
            raise ValueError(f"{self.label}: steps must be from 1 to {MAX_STEPS}, got {self.steps}")
        if self.kind in ("encoder", "hybrid"):
            if not self.encoder:
                raise ValueError(f"{self.label}: choose an encoder")
            if not 1 <= int(self.iterations) <= MAX_ITERATIONS:
                raise ValueError(f"{self.label}: iterations must be from 1 to {MAX_ITERATIONS}, got {self.iterations}")

    @property
    def label(self) -> str:
        return {"w": "W optimisation", "wplus": "W+ optimisation", "encoder": f"encoder {self.encoder}",
                "hybrid": f"hybrid ({self.encoder} + W+)"}.get(self.kind, self.kind)

    @property
    def cost(self) -> float:
        """Rough relative cost, to split the progress bar between methods."""
        return float(self.steps if self.kind != "encoder" else 0) + 5.0 * self.iterations * (self.kind != "w")


_ENCODERS: dict[tuple, object] = {}
_ENCODERS_LOCK = threading.Lock()


def zoo_encoder(encoder_id: str, progress: Progress = None, device: torch.device = torch.device("cpu")) -> EncoderRun:
    """The default resolver: fetch an encoder by id (or a local .pt path) through the encoder zoo,
    load it once per device, and run encode()/restyle() on it."""
    from stylecore.inversion import encoders

    local = Path(encoder_id).expanduser()
    key = (encoder_id, str(device), local.stat().st_mtime if local.is_file() else None)
    with _ENCODERS_LOCK:
        model = _ENCODERS.get(key)
        if model is None:
            if local.is_file():
                path = local
            else:
                try:
                    from stylecore.inversion.encoder_cards import fetch_encoder
                except ImportError as exc:
                    raise ValueError("encoders are not available in this installation (stylecore.inversion.encoder_cards is "
                                     "missing); give a local .pt path instead") from exc

                def on_bytes(done: int, total: Optional[int], message: str) -> None:
                    if progress is not None:
                        progress(done / total if total else 0.0, message)

                path = fetch_encoder(encoder_id, progress=on_bytes)
            model = encoders.load_encoder(path, device=device)
            _ENCODERS[key] = model

    return _ZooEncoderRun(model)


@dataclass
class _ZooEncoderRun:
    """A loaded encoder as an `EncoderRun`, carrying the decoder it was trained with."""

    model: object

    @property
    def decoder(self) -> torch.nn.Module:
        return self.model.decoder  # type: ignore[attr-defined]

    def __call__(self, target: torch.Tensor, iterations: int, step_progress: Progress) -> list[torch.Tensor]:
        from stylecore.inversion import encoders

        if getattr(self.model, "iterative", False):
            def on_step(done: int, total: int, message: str) -> None:
                if step_progress is not None:
                    step_progress(done / total, message)

            return [s.codes for s in encoders.restyle(self.model, target, iterations, progress=on_step)]
        return [encoders.encode(self.model, target)]


def decoder_match_note(encoder_name: str, decoder: Optional[torch.nn.Module], G: torch.nn.Module) -> str:
    """Whether G, which renders an encoder's codes, is the decoder the encoder was trained with
    (compared by the synthesis weights' SHA-256); '' when the encoder does not say."""
    if decoder is None:
        return ""
    if synthesis_digest(decoder) == synthesis_digest(G):
        return f"{encoder_name}: rendered with the same weights as the encoder's own decoder (SHA-256 match)"
    return (f"{encoder_name}: this generator is NOT the one the encoder was trained with (its weights differ from "
            "the encoder's decoder), so its codes are drawn by another network: expect a poor reconstruction; "
            "pick the encoder's own generator for a faithful result")


def result_tensor(result: InversionResult) -> torch.Tensor:
    """A result's uint8 image as [1, 3, H, W] in [-1, 1], for the metrics."""
    return torch.from_numpy(np.ascontiguousarray(result.image)).permute(2, 0, 1)[None].float() / 127.5 - 1


def _measure(result: InversionResult, target: torch.Tensor, lpips_net: torch.nn.Module) -> InversionResult:
    pred = result_tensor(result).to(target.device)
    result.metrics = image_metrics(lpips_net, pred, target)
    return result


def run_methods(G: torch.nn.Module, image: np.ndarray, methods: Sequence[MethodSpec], lpips_net: torch.nn.Module,
                resolve_encoder: Optional[EncoderResolver] = None, c: Optional[torch.Tensor] = None,
                force_fp32: bool = True, progress: Progress = None,
                should_stop: ShouldStop = None) -> list[InversionResult]:
    """Invert `image` (uint8 [R, R, 3], already aligned) with each method in turn; each result gets
    LPIPS / PSNR / MSE against the target. An encoder used both alone and as a hybrid start runs once.
    Stopping ends the running method early (its partial result is kept) and skips the rest."""
    if not methods:
        raise ValueError("choose at least one inversion method")
    for spec in methods:
        spec.validate()
    device = next(G.parameters()).device
    lpips_net = lpips_net.to(device)
    target = target_tensor(image, G, device)
    resolve = resolve_encoder or (lambda ident, prog: zoo_encoder(ident, prog, device))
    total = sum(max(s.cost, 1.0) for s in methods)
    done = 0.0
    results: list[InversionResult] = []
    encoder_cache: dict[tuple[str, int], InversionResult] = {}

    def sub_progress(weight: float) -> Progress:
        if progress is None:
            return None
        base = done
        return lambda fraction, message: progress(min(1.0, (base + weight * fraction) / total), message)

    def run_encoder(spec: MethodSpec, prog: Progress) -> InversionResult:
        key = (spec.encoder, spec.iterations)
        if key not in encoder_cache:
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
            encoder_cache[key] = _measure(result, target, lpips_net)
        return encoder_cache[key]

    for spec in methods:
        if should_stop is not None and should_stop():
            break
        weight = max(spec.cost, 1.0)
        prog = sub_progress(weight)
        if spec.kind == "w":
            result = project_w(G, target, lpips_net, ProjectorConfig(steps=int(spec.steps)), c=c,
                               force_fp32=force_fp32, progress=prog, should_stop=should_stop)
        elif spec.kind == "wplus":
            result = project_wplus(G, target, lpips_net, WPlusConfig(steps=int(spec.steps)), c=c,
                                   force_fp32=force_fp32, progress=prog, should_stop=should_stop)
        elif spec.kind == "encoder":
            result = run_encoder(spec, prog)
        else:
            start = run_encoder(spec, prog)
            result = hybrid(G, target, lpips_net, start, WPlusConfig(steps=int(spec.steps)), force_fp32=force_fp32,
                            progress=prog, should_stop=should_stop)
        results.append(_measure(result, target, lpips_net))
        done += weight
    return results


def save_result(path: Union[str, Path], result: InversionResult) -> Path:
    """Write a result's codes as .npz (key 'w' [1, num_ws, w_dim], the projector's layout, readable by
    the editing tab) with the method, latent space and metrics; the W projection's optimised noise
    maps are stored as 'noise:<buffer name>'."""
    from stylecore.codes.latents import save_latents

    meta: dict = {"method": result.method, "space": result.space, "steps": result.steps,
                  **{k: float(v) for k, v in result.metrics.items()}}
    meta.update({f"noise:{name}": tensor.numpy() for name, tensor in result.noise.items()})
    return save_latents(path, result.ws, **meta)
