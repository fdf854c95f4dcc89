"""Generator configurations of the released checkpoints, for benchmarks and test files with random
weights of the real sizes: StyleGAN2 config-F, StyleGAN3-T and StyleGAN3-R (channel_base halves
below 512 px, as the released 256 px models do), and StyleNeRF FFHQ.

The released StyleNeRF files differ from the repository's `stylenerf_ffhq.yaml` in three settings
(reference/encoders_clip_nerf.md, "C. (correction first)"): pixelshuffle upsampling, 64 NeRF
feature channels and a corner-aligned ray grid. Real checkpoints are always built from their own
stored kwargs; these only describe what those kwargs are reported to be.
"""
from __future__ import annotations

import math
from typing import Any

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


def stylenerf_ffhq_kwargs(resolution: int = 256, released: bool = True, w_dim: int = 512, hidden: int = 128,
                hidden_bg: int = 64, channel_base: float = 1.0) -> dict[str, Any]:
    """`Generator(**kwargs)` of the FFHQ configuration at 256, 512 or 1024 (released variant by default)."""
    if resolution not in (64, 128, 256, 512, 1024):
        raise ValueError(f"StyleNeRF FFHQ configurations exist at 256, 512 and 1024, got {resolution}")
    camera = dict(range_v=[math.pi / 2 - 0.155, math.pi / 2 + 0.155], range_u=[-0.3, 0.3], range_radius=[1.0, 1.0],
                  depth_range=[0.88, 1.12], fov=12, gaussian_camera=True, angular_camera=True, depth_transform=None,
                  dists_normalized=False, ray_align_corner=released, bg_start=0.5)
    synthesis = dict(
        num_fp16_res=4, channel_base=channel_base, channel_max=1024, conv_clamp=256, kernel_size=1,
        architecture="skip", upsample_mode="pixelshuffle" if released else "nn_cat", z_dim_bg=32, z_dim=0,
        resolution_vol=32, resolution_start=32, rgb_out_dim=64 if released else 256, use_noise=False,
        module_name="training.stylenerf.NeRFSynthesisNetwork", no_bbox=True, margin=0, magnitude_ema_beta=0.999,
        camera_kwargs=camera,
        renderer_kwargs=dict(n_bg_samples=4, n_ray_samples=14, abs_sigma=False, hierarchical=True,
                             no_background=False),
        foreground_kwargs=dict(positional_encoding="normal", downscale_p_by=1, use_style="StyleGAN2",
                               predict_rgb=True, use_viewdirs=False, hidden_size=hidden),
        background_kwargs=dict(positional_encoding="normal", hidden_size=hidden_bg, n_blocks=4, downscale_p_by=1,
                               skips=[], inverse_sphere=True, use_style="StyleGAN2", predict_rgb=True,
                               use_viewdirs=False),
        upsampler_kwargs=dict(channel_base=channel_base, channel_max=1024, no_2d_renderer=False,
                              no_residual_img=False, block_reses=None, shared_rgb_style=False,
                              upsample_type="bilinear"),
        progressive=True, n_reg_samples=16, reg_full=True)
    return dict(z_dim=w_dim, w_dim=w_dim, mapping_kwargs={"num_layers": 8}, synthesis_kwargs=synthesis, c_dim=0,
                img_resolution=resolution, img_channels=3)
