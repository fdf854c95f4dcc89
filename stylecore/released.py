"""Generator configurations of the released checkpoints, for benchmarks and test files with random
weights of the real sizes: StyleGAN2 config-F, StyleGAN3-T and StyleGAN3-R (channel_base halves
below 512 px, as the released 256 px models do)."""
from __future__ import annotations

import torch

ARCHITECTURE = {"sg2": "stylegan2", "sg3t": "stylegan3", "sg3r": "stylegan3"}


def released_kwargs(arch: str, res: int) -> dict:
    """Official init kwargs of a released `arch` ('sg2', 'sg3t', 'sg3r') generator at `res` px."""
    common = dict(z_dim=512, c_dim=0, w_dim=512, img_resolution=res, img_channels=3)
    if arch == "sg2":
        return dict(common, mapping_kwargs={"num_layers": 8}, channel_base=32768 if res >= 512 else 16384,
                    channel_max=512, num_fp16_res=4, conv_clamp=256)
    if arch == "sg3t":
        return dict(common, mapping_kwargs={"num_layers": 2}, channel_base=32768 if res >= 512 else 16384,
                    channel_max=512, magnitude_ema_beta=0.999)
    if arch == "sg3r":
        return dict(common, mapping_kwargs={"num_layers": 2}, channel_base=65536 if res >= 512 else 32768,
                    channel_max=1024, conv_kernel=1, use_radial_filters=True, magnitude_ema_beta=0.999)
    raise ValueError(f"unknown released architecture {arch!r}; known: {sorted(ARCHITECTURE)}")


def random_released_generator(arch: str, res: int, device: torch.device | str = "cpu",
                              seed: int = 0) -> torch.nn.Module:
    """A released-size generator with seeded random weights, in eval mode without gradients."""
    from stylecore.networks import build_generator

    torch.manual_seed(seed)
    G = build_generator(ARCHITECTURE[arch], released_kwargs(arch, res))
    return G.to(device).eval().requires_grad_(False)
