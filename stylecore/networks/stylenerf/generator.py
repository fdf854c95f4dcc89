"""StyleNeRF generator (facebookresearch/StyleNeRF, `training.networks.Generator` with
`training.stylenerf.NeRFSynthesisNetwork`), inference path, official parameter names.

ws -> style-modulated foreground NeRF + latent-fed background NeRF -> volume rendering at 32x32
-> StyleGAN2-style 2-D upsampler -> image. Every setting comes from the constructor kwargs a
checkpoint stores, so both the repository's yaml (nn_cat upsampling, centred ray grid) and the
released FFHQ files (pixelshuffle, corner-aligned grid, 64 feature channels) build and load
strictly. See reference/encoders_clip_nerf.md section C and fixtures README-stylenerf.md.

Calls: `G(z)` or `G(styles=ws, camera_matrices=G.synthesis.get_camera(...), theta=roll,
render_option="freeze_bg,steps:40")` return the image tensor (so the hub's StyleGAN helpers work
unchanged); `full_output=True` returns the original's dict with 'img', 'img_nerf' and 'x_nerf';
`G.get_final_output(...)` is the original's helper.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
import torch

from stylecore.networks.layers import MappingNetwork
from stylecore.networks.stylenerf.camera import CameraRay, ray_pixels, rays_world
from stylecore.networks.stylenerf.nerf import NeRFBlock
from stylecore.networks.stylenerf.render import VolumeRenderer, parse_render_option
from stylecore.networks.stylenerf.upsampler import UpsamplerBlock

__all__ = ["Generator", "NeRFSynthesisNetwork", "SYNTHESIS_MODULE", "FROZEN_BG_PITCH"]

SYNTHESIS_MODULE = "training.stylenerf.NeRFSynthesisNetwork"
FROZEN_BG_PITCH = math.pi / 2 + 0.2  # the fixed background camera of render option freeze_bg (yaw 0)
_STEPS_WITHOUT_ALPHA = 20  # default samples per ray when synthesis.alpha is still -1 (never trained)
_BLOCK_KEYS = ("architecture", "conv_clamp", "kernel_size", "use_noise", "activation", "upsample_mode",
               "magnitude_ema_beta", "resample_filter", "fp16_channels_last")
# Constructor options of the original that only matter for training or that are off in every
# released configuration; accepted so stored kwargs pass as they are.
_IGNORED = ("progressive", "prg_start_res", "n_reg_samples", "reg_full", "regularization", "cam_based_sampler",
            "rectangular", "freeze_nerf", "no_bbox", "margin", "predict_camera", "camera_condition")


class NeRFSynthesisNetwork(torch.nn.Module):
    """ws [B, num_ws, w_dim] + camera -> image; `C` camera, `V` renderer, `fg_nerf`, `bg_nerf`, `b64`...`bR`."""

    def __init__(
        self,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        channel_base: float = 1,
        channel_max: int = 1024,
        camera_kwargs: Optional[Mapping[str, Any]] = None,
        renderer_kwargs: Optional[Mapping[str, Any]] = None,
        upsampler_kwargs: Optional[Mapping[str, Any]] = None,
        input_kwargs: Optional[Mapping[str, Any]] = None,
        foreground_kwargs: Optional[Mapping[str, Any]] = None,
        background_kwargs: Optional[Mapping[str, Any]] = None,
        z_dim: int = 256,
        z_dim_bg: int = 128,
        rgb_out_dim: int = 256,
        rgb_out_dim_bg: Optional[int] = None,
        resolution_vol: int = 32,
        resolution_start: Optional[int] = None,
        num_fp16_res: int = 0,
        module_name: str = SYNTHESIS_MODULE,
        **block_kwargs: Any,
    ):
        if module_name != SYNTHESIS_MODULE:
            raise ValueError(f"synthesis module {module_name!r} is not supported; expected {SYNTHESIS_MODULE}")
        if input_kwargs and dict(input_kwargs).get("output_mode", "none") != "none":
            raise ValueError("StyleNeRF input encodings (input_kwargs.output_mode) are not supported")
        log2 = int(np.log2(img_resolution))
        if img_resolution < 4 or 2 ** log2 != img_resolution:
            raise ValueError(f"img_resolution must be a power of two, got {img_resolution}")
        super().__init__()
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = log2
        self.img_channels = img_channels
        self.z_dim = z_dim
        self.z_dim_bg = z_dim_bg
        self.rgb_out_dim = rgb_out_dim
        self.rgb_out_dim_bg = rgb_out_dim_bg if rgb_out_dim_bg is not None else rgb_out_dim
        self.resolution_vol = min(resolution_vol, img_resolution)
        self.resolution_start = resolution_start if resolution_start is not None else self.resolution_vol
        if self.resolution_start != self.resolution_vol:
            raise ValueError("resolution_start different from resolution_vol is not supported")
        up_kw = dict(upsampler_kwargs or {})
        if up_kw.get("no_2d_renderer") or up_kw.get("no_residual_img") or up_kw.get("block_reses"):
            raise ValueError(f"upsampler options {up_kw} are not supported (released checkpoints use the defaults)")
        unknown = sorted(k for k in block_kwargs if k not in _BLOCK_KEYS and k not in _IGNORED)
        if unknown:
            raise ValueError(f"unknown StyleNeRF synthesis options: {', '.join(unknown)}")
        block = {k: v for k, v in block_kwargs.items() if k in _BLOCK_KEYS}

        self.C = CameraRay(camera_kwargs)
        self.V = VolumeRenderer(renderer_kwargs)
        fg = dict(foreground_kwargs or {})
        fg.update(w_dim=w_dim, z_dim=z_dim, rgb_out_dim=rgb_out_dim, img_channels=img_channels)
        self.fg_nerf = NeRFBlock(fg)
        self.num_ws = self.fg_nerf.num_ws
        self.bg_nerf: Optional[NeRFBlock] = None
        if not self.V.no_background:
            bg = dict(background_kwargs or {})
            bg.update(w_dim=w_dim, z_dim=z_dim_bg, rgb_out_dim=self.rgb_out_dim_bg, img_channels=img_channels)
            self.bg_nerf = NeRFBlock(bg)
            self.num_ws += self.bg_nerf.num_ws

        base = int(float(channel_base) * 32768)
        self.block_resolutions = [2 ** i for i in range(int(np.log2(self.resolution_vol)) + 1, log2 + 1)]
        channels = {res: min(base // res, channel_max) for res in self.block_resolutions}
        first = self.block_resolutions[0] if self.block_resolutions else img_resolution
        fp16_resolution = max(2 ** (log2 + 1 - num_fp16_res), 2 * first)
        self.num_fp16_res = num_fp16_res
        for res in self.block_resolutions:
            in_channels = channels[res // 2] if res > first else rgb_out_dim
            layer = UpsamplerBlock(in_channels, channels[res], w_dim=w_dim, resolution=res,
                                   img_channels=img_channels, is_last=res == img_resolution,
                                   use_fp16=res >= fp16_resolution, **block)
            self.num_ws += layer.num_conv + (layer.num_torgb if res == img_resolution else 0)
            setattr(self, f"b{res}", layer)
        self.register_buffer("alpha", torch.scalar_tensor(-1.0))
        self._steps: Optional[int] = None

    def style_layers(self) -> list:
        """StyleSpace is defined for StyleGAN2 and StyleGAN3 only: its rows would mix NeRF and upsampler styles."""
        raise ValueError("StyleSpace needs a StyleGAN2 or StyleGAN3 generator; StyleNeRF has neither layout")

    # -- cameras and latent codes ---------------------------------------------------------------

    def get_camera(self, batch_size: int, mode: Sequence[Any], device: Union[str, torch.device] = "cpu",
                   fov: Optional[Union[float, Sequence[float]]] = None) -> tuple:
        """(K_inv, RT, mode, None) for normalised mode = [u, v, r]; see CameraRay.get_camera."""
        return self.C.get_camera(batch_size, mode, device=device, fov=fov)

    def frozen_bg_camera(self, batch_size: int, device: Union[str, torch.device]) -> tuple:
        """The fixed background camera of `freeze_bg`: yaw 0, pitch pi/2 + 0.2, default fov."""
        (v0, v1), (u0, u1) = self.C.range_v, self.C.range_u
        u = (0.0 - u0) / (u1 - u0)
        return self.get_camera(batch_size, [u, (FROZEN_BG_PITCH - v0) / (v1 - v0), 0.5], device=device)

    def get_latent_codes(self, batch_size: int, device: Union[str, torch.device] = "cpu", tmp: float = 1.0,
                         generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, ...]:
        """(z_shape, z_app, z_bg, z_bg_app) drawn as the original does: each randn drawn twice, the
        first discarded, scaled by `tmp`. Drawn on the CPU, so a seed gives the same codes on any device."""
        def sample(dim: int) -> torch.Tensor:
            torch.randn(batch_size, dim, generator=generator)
            return (torch.randn(batch_size, dim, generator=generator) * tmp).to(device)

        return sample(self.z_dim), sample(self.z_dim), sample(self.z_dim_bg), sample(self.z_dim_bg)

    def default_steps(self) -> int:
        """Samples per ray without a `steps:N` option (the progressive-growing state decides)."""
        if self._steps is None:  # reading the buffer syncs with the device: once per loaded state
            alpha = float(self.alpha)
            if 0 <= alpha < 1:
                warnings.warn(f"StyleNeRF checkpoint saved mid progressive growing (alpha={alpha:.3f}); "
                              "all upsampler blocks run as for a finished model", stacklevel=3)
            self._steps = int(self.V.n_ray_samples) if alpha >= 0 else _STEPS_WITHOUT_ALPHA
        return self._steps

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        self._steps = None
        super()._load_from_state_dict(*args, **kwargs)

    # -- forward --------------------------------------------------------------------------------

    def forward(self, ws: torch.Tensor, camera_matrices: Optional[Sequence[Any]] = None,
                theta: Union[float, torch.Tensor] = 0.0, latent_codes: Optional[Sequence[torch.Tensor]] = None,
                render_option: Optional[str] = None, noise_mode: str = "const", force_fp32: bool = False,
                fused_modconv: Optional[bool] = None, full_output: bool = False,
                update_emas: bool = False, **unused: Any) -> Union[torch.Tensor, dict]:
        """Render ws from a camera (default: the mean pose) -> image [B, C, R, R] or the full dict."""
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f"ws must have shape [N, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}")
        ws = ws.to(torch.float32)
        B, device = ws.shape[0], ws.device
        options = parse_render_option(render_option)
        if camera_matrices is None:
            camera_matrices = self.get_camera(B, [0.5, 0.5, 0.5], device=device)
        K_inv, RT = (m.to(device=device, dtype=torch.float32) for m in camera_matrices[:2])
        if latent_codes is None:
            latent_codes = self.get_latent_codes(B, device)
        z_bg = latent_codes[2].to(device)

        pixels = ray_pixels(self.resolution_vol, self.img_resolution, bool(self.C.ray_align_corner), theta, device)
        origin, world = rays_world(K_inv, RT, pixels)
        nerf_ws = ws[:, :self.fg_nerf.num_ws]
        steps = options.steps or self.default_steps()
        feat, remaining = self.V.foreground(lambda p: self.fg_nerf(p, ws=nerf_ws), origin, world - origin,
                                            self.C.depth_range, steps)
        if self.bg_nerf is not None:
            if options.freeze_bg:
                K_bg, RT_bg = self.frozen_bg_camera(B, device)[:2]
                origin, world = rays_world(K_bg, RT_bg, pixels)
            bg = self.V.background(lambda p: self.bg_nerf(p, z=z_bg), origin, world - origin, self.C.bg_start)
            feat = feat + remaining.unsqueeze(-1) * bg
        n = self.resolution_vol
        feat = feat.transpose(1, 2).reshape(B, -1, n, n)
        img_nerf, x = feat[:, :self.img_channels], feat[:, self.img_channels:]

        img = img_nerf
        w_idx = self.fg_nerf.num_ws + (self.bg_nerf.num_ws if self.bg_nerf is not None else 0)
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            block_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
            w_idx += block.num_conv
            x, img = block(x, img, block_ws, force_fp32=force_fp32, fused_modconv=fused_modconv,
                           noise_mode=noise_mode)
        if full_output:
            return {"img": img, "img_nerf": img_nerf, "x_nerf": feat[:, self.img_channels:]}
        return img

    def extra_repr(self) -> str:
        return (f"w_dim={self.w_dim}, num_ws={self.num_ws}, img_resolution={self.img_resolution}, "
                f"resolution_vol={self.resolution_vol}, upsample_mode="
                f"{getattr(self, f'b{self.img_resolution}').conv0.upsample_mode if self.block_resolutions else None}")


class Generator(torch.nn.Module):
    """StyleNeRF generator: mapping (official names) + NeRFSynthesisNetwork.

    Takes the stored form `Generator(z_dim, c_dim, w_dim, img_resolution, img_channels,
    mapping_kwargs, synthesis_kwargs)` (the synthesis kwargs hold a NeRF `z_dim` of their own, so
    they stay nested); `forward` also takes precomputed `styles`, as the original does.
    """

    architecture = "stylenerf"

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, img_resolution: int, img_channels: int,
                 mapping_kwargs: Optional[dict] = None, synthesis_kwargs: Optional[dict] = None):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.synthesis = NeRFSynthesisNetwork(w_dim=w_dim, img_resolution=img_resolution,
                                              img_channels=img_channels, **dict(synthesis_kwargs or {}))
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws,
                                      **{"w_avg_beta": 0.995, **dict(mapping_kwargs or {})})

    def forward(self, z: Optional[torch.Tensor] = None, c: Optional[torch.Tensor] = None,
                styles: Optional[torch.Tensor] = None, truncation_psi: float = 1,
                truncation_cutoff: Optional[int] = None, update_emas: bool = False,
                **synthesis_kwargs: Any) -> Union[torch.Tensor, dict]:
        """Image for latents z (or ready `styles` = ws); synthesis kwargs pass through."""
        if styles is None:
            if z is None:
                raise ValueError("pass z or styles")
            styles = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                                  update_emas=update_emas)
        return self.synthesis(styles, **synthesis_kwargs)

    def get_final_output(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        """The final image whatever the output form (the original's helper)."""
        out = self.forward(*args, **kwargs)
        return out["img"] if isinstance(out, dict) else out
