"""StyleNeRF render speed: seconds per view of a random-weight generator of the released FFHQ
configuration (the speed does not depend on the weights, and no download is needed).

Figures per view (batch 1, the tab's case): the demo's quality (40 + 40 samples per ray), the
checkpoint default (14 + 14), a draft setting (8 + 8), and the share of the time spent in the
NeRF (volume rendering at 32x32) versus the 2-D upsampler.
"""
from __future__ import annotations

import time
from typing import Callable

import torch

from stylecore.engine.manager import resolve_device

STEP_SETTINGS = (40, 14, 8)


def _timed(fn: Callable[[], object], sync: Callable[[], None], repeat: int) -> float:
    """Best seconds of `repeat` calls after one warm-up call (the best is the least disturbed by
    other work on a shared machine)."""
    fn()
    sync()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_stylenerf(res: int = 256, device: str = "auto", repeat: int = 3, threads: int = 0,
                    fp32: bool = False) -> dict:
    """Time single views of the released FFHQ configuration at `res`; returns the figures as a dict."""
    from stylecore.video.nerf_views import ViewSettings, background_codes, render_ws, view_ws
    from stylecore.networks import build_generator
    from stylecore.engine.demo import name_seeded_init
    from stylecore.engine.released import stylenerf_ffhq_kwargs

    dev = resolve_device(device)
    if threads:
        torch.set_num_threads(threads)
    G = name_seeded_init(build_generator("stylenerf", stylenerf_ffhq_kwargs(res)))
    G = G.to(dev).eval().requires_grad_(False)
    force_fp32 = fp32 or dev.type != "cuda"  # on GPUs the upsampler's top blocks run in fp16, as released

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    base = ViewSettings(yaw=0.3, pitch=-0.2)
    ws = view_ws(G, 1, None, base)
    codes = background_codes(G, 1)
    out = {"res": res, "device": str(dev), "dtype": "float32" if force_fp32 else "fp16 upsampler",
           "threads": torch.get_num_threads(), "num_ws": G.num_ws,
           "params": sum(p.numel() for p in G.parameters())}
    for steps in STEP_SETTINGS:
        view = ViewSettings(yaw=0.3, pitch=-0.2, steps=steps)
        out[f"view_s_steps{steps}"] = _timed(lambda: render_ws(G, ws, view, codes, force_fp32), sync, repeat)
    # The NeRF part alone: an upsampler-free pass through the renderer (blocks skipped).
    synth = G.synthesis
    blocks, synth.block_resolutions = synth.block_resolutions, []
    try:
        view = ViewSettings(yaw=0.3, pitch=-0.2, steps=STEP_SETTINGS[0])
        with torch.no_grad():
            out["nerf_s_steps40"] = _timed(
                lambda: synth(ws, camera_matrices=None, latent_codes=codes, render_option=view.render_option),
                sync, repeat)
    finally:
        synth.block_resolutions = blocks
    return out


def format_report(r: dict) -> str:
    lines = [f"StyleNeRF FFHQ {r['res']}x{r['res']} (released configuration, random weights, {r['num_ws']} ws, "
             f"{r['params'] / 1e6:.1f} M parameters) on {r['device']} ({r['dtype']}, {r['threads']} threads)"]
    for steps in STEP_SETTINGS:
        s = r[f"view_s_steps{steps}"]
        lines.append(f"  {steps:2d}+{steps:<2d} samples per ray: {s * 1000:8.1f} ms per view ({1 / s:5.2f} views/s)")
    nerf = r["nerf_s_steps40"]
    lines.append(f"  of which the NeRF at 40+40 samples: {nerf * 1000:.1f} ms, "
                 f"upsampler {max(r['view_s_steps40'] - nerf, 0) * 1000:.1f} ms")
    return "\n".join(lines)
