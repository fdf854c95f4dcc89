"""Constructor kwargs of StyleNeRF configurations: the released FFHQ checkpoints (for benchmarks
and tests of real-size files) and the small built-in demo network.

The released files differ from the repository's `stylenerf_ffhq.yaml` in three settings
(reference/encoders_clip_nerf.md, "C. (correction first)"): pixelshuffle upsampling, 64 NeRF
feature channels and a corner-aligned ray grid. Real checkpoints are always built from their own
stored kwargs; these only describe what those kwargs are reported to be.
"""
from __future__ import annotations

import math
import zlib
from typing import Any

import torch

__all__ = ["ffhq_kwargs", "demo_kwargs", "name_seeded_init"]


def ffhq_kwargs(resolution: int = 256, released: bool = True, w_dim: int = 512, hidden: int = 128,
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


def demo_kwargs() -> dict[str, Any]:
    """A small 64x64 network with every feature of the released configuration (renders in ~0.1 s on CPU)."""
    kwargs = ffhq_kwargs(64, w_dim=64, hidden=32, hidden_bg=16, channel_base=0.0625)
    kwargs["synthesis_kwargs"]["rgb_out_dim"] = 32
    kwargs["synthesis_kwargs"]["num_fp16_res"] = 0
    return kwargs


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
