"""StyleNeRF's 2-D upsampler: StyleGAN2 synthesis blocks with 1x1 convolutions, an input
magnitude EMA and learned 2x upsampling (`nn_cat` or `pixelshuffle`), official names.

Both modes run the modulated convolution at the low resolution, upsample nearest-neighbour,
add a learned sub-pixel term through a two-layer `adapter`, blur with [1,3,3,1], then apply
bias, activation and clamp (fixtures README-stylenerf.md).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F

from stylecore.networks.stylegan2 import Conv2dLayer, SynthesisBlock, SynthesisLayer
from stylecore.ops.bias_act import bias_act
from stylecore.ops.upfirdn2d import filter2d

__all__ = ["UpsamplerLayer", "UpsamplerBlock", "UPSAMPLE_MODES"]

UPSAMPLE_MODES = ("default", "nn_cat", "pixelshuffle")


def _neighbour_means(x: torch.Tensor) -> torch.Tensor:
    """nn_cat's sub-pixel guess: each output sub-pixel is the mean of its two nearest input
    neighbours (left/right with up/down, zero padded), pixel-shuffled to 2x resolution."""
    pad = F.pad(x, [1, 1, 1, 1])
    left, right = pad[..., 1:-1, :-2], pad[..., 1:-1, 2:]
    up, down = pad[..., :-2, 1:-1], pad[..., 2:, 1:-1]
    subs = torch.stack([(left + up) * 0.5, (right + up) * 0.5, (left + down) * 0.5, (right + down) * 0.5], dim=2)
    return F.pixel_shuffle(subs.flatten(1, 2), 2)


class UpsamplerLayer(SynthesisLayer):
    """SynthesisLayer with StyleNeRF's options: magnitude EMA input gain and learned upsampling."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, kernel_size: int = 3,
                 up: int = 1, use_noise: bool = True, activation: str = "lrelu",
                 resample_filter: Sequence[float] = (1, 3, 3, 1), conv_clamp: Optional[float] = None,
                 channels_last: bool = False, upsample_mode: str = "default", magnitude_ema_beta: float = -1,
                 **_unused: Any):
        if upsample_mode not in UPSAMPLE_MODES:
            raise ValueError(f"upsample_mode {upsample_mode!r} is not supported; known: {', '.join(UPSAMPLE_MODES)}")
        super().__init__(in_channels, out_channels, w_dim, resolution, kernel_size=kernel_size, up=up,
                         use_noise=use_noise, activation=activation, resample_filter=resample_filter,
                         conv_clamp=conv_clamp, channels_last=channels_last)
        self.upsample_mode = upsample_mode
        self.magnitude_ema_beta = magnitude_ema_beta
        if magnitude_ema_beta > 0:
            self.register_buffer("w_avg", torch.ones([]))
        if up == 2 and upsample_mode == "pixelshuffle":
            self.adapter = torch.nn.Sequential(
                Conv2dLayer(out_channels, out_channels // 4, kernel_size=1, activation=activation),
                Conv2dLayer(out_channels // 4, out_channels * 4, kernel_size=1, activation="linear"))
        elif up == 2 and upsample_mode == "nn_cat":
            self.adapter = torch.nn.Sequential(
                Conv2dLayer(out_channels * 2, out_channels // 4, kernel_size=1, activation=activation),
                Conv2dLayer(out_channels // 4, out_channels, kernel_size=1, activation="linear"))
        if hasattr(self, "adapter"):  # the original registers the adapter before the affine layer
            self._modules["affine"] = self._modules.pop("affine")

    def _learned_up(self, x: torch.Tensor) -> torch.Tensor:
        xa = F.interpolate(x, scale_factor=2, mode="nearest")
        if self.upsample_mode == "pixelshuffle":
            x = xa + F.pixel_shuffle(self.adapter(x), 2)
        else:
            x = xa + self.adapter(torch.cat([xa, _neighbour_means(x)], dim=1))
        # The [1,3,3,1] blur as two 1-D passes: the 4x4 buffer is the outer product of its row sums.
        return filter2d(x, self.resample_filter.sum(dim=0))

    def _modulated_1x1(self, x: torch.Tensor, w: torch.Tensor, scale: torch.Tensor,
                       bias: Optional[torch.Tensor]) -> torch.Tensor:
        """Demodulated 1x1 convolution as one batched matrix product, output scaled by `scale`
        (a tensor, so no host sync) with an optional bias added inside the product."""
        B, _, H, W = x.shape
        weight = self.weight.reshape(self.weight.shape[0], -1).unsqueeze(0) * self.affine(w).unsqueeze(1)
        weight = weight * ((weight.square().sum(dim=2, keepdim=True) + 1e-8).rsqrt() * scale)
        cols = x.reshape(B, x.shape[1], H * W)
        if bias is None:
            y = torch.bmm(weight.to(x.dtype), cols)
        else:
            y = torch.baddbmm(bias.to(x.dtype).reshape(1, -1, 1).expand(B, -1, 1), weight.to(x.dtype), cols)
        return y.reshape(B, -1, H, W)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random",
                fused_modconv: bool = True, gain: float = 1) -> torch.Tensor:
        if self.use_noise and noise_mode != "none":
            raise ValueError("StyleNeRF upsampler layers with noise inputs are not supported")
        input_gain = self.w_avg.rsqrt() if self.magnitude_ema_beta > 0 else torch.ones([], device=x.device)
        act_gain = self.act_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        if self.weight.shape[-1] != 1 or (self.up == 2 and self.upsample_mode == "default"):
            x = x * input_gain.to(x.dtype)
            return super().forward(x, w, noise_mode=noise_mode, fused_modconv=fused_modconv, gain=gain)
        if self.up == 1 and self.activation == "lrelu":
            # act(y + b) * gain with gain > 0 = lrelu(gain * y + gain * b): gains folded into the product.
            x = self._modulated_1x1(x, w, input_gain * act_gain, self.bias * act_gain)
            x = F.leaky_relu_(x, 0.2)
            return x if act_clamp is None else x.clamp_(-act_clamp, act_clamp)
        x = self._modulated_1x1(x, w, input_gain, None)
        if self.up == 2:
            x = self._learned_up(x)
        return bias_act(x, self.bias.to(x.dtype), act=self.activation, gain=act_gain, clamp=act_clamp)


class UpsamplerBlock(SynthesisBlock):
    """A StyleGAN2 'skip' SynthesisBlock whose convolutions are UpsamplerLayers."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 is_last: bool, architecture: str = "skip", resample_filter: Sequence[float] = (1, 3, 3, 1),
                 conv_clamp: Optional[float] = 256, use_fp16: bool = False, fp16_channels_last: bool = False,
                 kernel_size: int = 3, use_noise: bool = True, activation: str = "lrelu",
                 upsample_mode: str = "default", magnitude_ema_beta: float = -1):
        if in_channels == 0 or architecture == "resnet":
            raise ValueError("StyleNeRF upsampler blocks take an input and use the 'skip' or 'orig' architecture")
        super().__init__(in_channels, out_channels, w_dim, resolution, img_channels, is_last,
                         architecture=architecture, resample_filter=resample_filter, conv_clamp=conv_clamp,
                         use_fp16=use_fp16, fp16_channels_last=fp16_channels_last, kernel_size=kernel_size,
                         use_noise=use_noise, activation=activation)
        layer = dict(w_dim=w_dim, resolution=resolution, kernel_size=kernel_size, use_noise=use_noise,
                     activation=activation, resample_filter=resample_filter, conv_clamp=conv_clamp,
                     upsample_mode=upsample_mode, magnitude_ema_beta=magnitude_ema_beta)
        self.conv0 = UpsamplerLayer(in_channels, out_channels, up=2, **layer)
        self.conv1 = UpsamplerLayer(out_channels, out_channels, **layer)
