"""The built-in demo networks: small, untrained, deterministic, available without any download,
so every control of the hub can be tried offline."""
from __future__ import annotations

import math
import zlib
from typing import Any

import torch

from stylecore.engine.released import stylenerf_ffhq_kwargs


def _stylenerf_demo_kwargs() -> dict[str, Any]:
    """A small 64x64 network with every feature of the released configuration (renders in ~0.1 s on CPU)."""
    kwargs = stylenerf_ffhq_kwargs(64, w_dim=64, hidden=32, hidden_bg=16, channel_base=0.0625)
    kwargs["synthesis_kwargs"]["rgb_out_dim"] = 32
    kwargs["synthesis_kwargs"]["num_fp16_res"] = 0
    return kwargs

DEMO_KWARGS = {
    "stylegan2": dict(z_dim=64, c_dim=0, w_dim=64, img_resolution=64, img_channels=3,
                      mapping_kwargs={"num_layers": 2}, channel_base=2048, channel_max=64,
                      num_fp16_res=0, conv_clamp=256),
    "stylegan3": dict(z_dim=64, c_dim=0, w_dim=64, img_resolution=64, img_channels=3,
                      mapping_kwargs={"num_layers": 2}, channel_base=2048, channel_max=64,
                      num_fp16_res=0, conv_clamp=256),
}
DEMO_KWARGS["stylenerf"] = _stylenerf_demo_kwargs()  # 64x64, the released configuration's features at a small size


def build_demo_generator(architecture: str = "stylegan2", seed: int = 0) -> torch.nn.Module:
    """A small untrained network with deterministic random weights, for trying every control
    offline. Biases and noise are made non-zero so the images are not flat."""
    from stylecore.networks import build_generator

    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        G = build_generator(architecture, DEMO_KWARGS[architecture])
    if architecture == "stylenerf":  # the parity fixtures' rule keeps the foreground semi-opaque
        return name_seeded_init(G, seed)
    with torch.no_grad():
        for name, tensor in G.named_parameters():
            if name.endswith("bias") and "affine" not in name:
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * 0.1)
            elif name.endswith("noise_strength"):
                tensor.fill_(0.1)
        for name, tensor in G.named_buffers():
            if name.endswith("w_avg"):
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * 0.5)
    return G


def build_demo_domain(name: str) -> torch.nn.Module:
    """A domain of the demo StyleGAN2, as a StyleGAN-NADA domain is of its generator: the same mapping,
    other synthesis weights (seeded from `name`, so each named domain is always the same)."""
    G = build_demo_generator("stylegan2")
    other = build_demo_generator("stylegan2", seed=zlib.crc32(name.encode("utf-8")) % 2 ** 31)
    G.synthesis.load_state_dict(other.synthesis.state_dict())
    return G


@torch.no_grad()
def name_seeded_init(G: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Deterministic random weights by the parity fixtures' rule (README-stylenerf.md), so an
    untrained network still shows a semi-opaque foreground that moves with the camera."""
    for key, tensor in G.state_dict().items():
        if key.endswith("resample_filter"):
            continue
        g = torch.Generator().manual_seed(zlib.crc32(key.encode("utf-8")) ^ seed)
        r = torch.randn(tensor.shape, generator=g, dtype=torch.float32)
        fan_in = max(tensor.numel() // tensor.shape[0], 1) if tensor.ndim else 1
        if key == "synthesis.alpha":
            value = torch.ones([])
        elif key == "mapping.w_avg":
            value = 0.5 * r
        elif key.endswith("w_avg") and tensor.ndim == 0:
            value = torch.exp(0.5 * r)
        elif key == "synthesis.fg_nerf.sigma_out.weight":
            value = 8 * r
        elif key.startswith("synthesis.bg_nerf.") and key.endswith("weight") and tensor.ndim == 2:
            value = r / math.sqrt(fan_in)
        elif key.startswith("mapping.fc") and key.endswith("weight"):
            value = r / 0.01
        elif tensor.ndim >= 2:
            value = r
        else:
            value = 0.1 * r
        tensor.copy_(value)
    return G
