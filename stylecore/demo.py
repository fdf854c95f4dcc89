"""The built-in demo networks: small, untrained, deterministic, available without any download,
so every control of the hub can be tried offline."""
from __future__ import annotations

import torch

from stylecore.networks.stylenerf_configs import demo_kwargs, name_seeded_init

DEMO_KWARGS = {
    "stylegan2": dict(z_dim=64, c_dim=0, w_dim=64, img_resolution=64, img_channels=3,
                      mapping_kwargs={"num_layers": 2}, channel_base=2048, channel_max=64,
                      num_fp16_res=0, conv_clamp=256),
    "stylegan3": dict(z_dim=64, c_dim=0, w_dim=64, img_resolution=64, img_channels=3,
                      mapping_kwargs={"num_layers": 2}, channel_base=2048, channel_max=64,
                      num_fp16_res=0, conv_clamp=256),
}
DEMO_KWARGS["stylenerf"] = demo_kwargs()  # 64x64, the released configuration's features at a small size


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
