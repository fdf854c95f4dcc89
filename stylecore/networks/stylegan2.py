"""StyleGAN2 generator (StyleGAN2-ADA-PyTorch and StyleGAN3 code bases), official names.

Parameter and buffer names, shapes and call signatures follow the official networks so that
released checkpoints load with `strict=True`. Covers every option released checkpoints use:
mapping depth and lr multiplier, class conditioning, truncation with cutoff, the `orig`, `skip`
and `resnet` architectures, fp16 blocks with conv_clamp, noise modes and fused modulated conv.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import numpy as np
import torch

from stylecore.networks.styles import StyleLayer
from stylecore.networks.layers import FullyConnectedLayer, MappedGenerator, reduced_precision
from stylecore.ops.bias_act import ACTIVATIONS, bias_act
from stylecore.ops.conv2d_resample import conv2d_resample
from stylecore.ops.upfirdn2d import setup_filter, upsample2d

NOISE_MODES = ("random", "const", "none")


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    noise: Optional[torch.Tensor] = None,
    up: int = 1,
    down: int = 1,
    padding: int = 0,
    resample_filter: Optional[torch.Tensor] = None,
    demodulate: bool = True,
    flip_weight: bool = True,
    fused_modconv: bool = True,
) -> torch.Tensor:
    """Convolution whose weights are scaled per sample by `styles` and (optionally) demodulated.

    Fused: one grouped convolution with per-sample weights. Unfused: scale activations before and
    after a shared convolution. Both compute the same thing; unfused is safer in fp16 batches.
    """
    batch = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape

    if x.dtype == torch.float16 and demodulate:
        # Pre-normalise so fp16 products cannot overflow; demodulation cancels these scales.
        weight = weight * (1 / np.sqrt(in_channels * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)

    w = None
    dcoefs = None
    if demodulate or fused_modconv:
        w = weight.unsqueeze(0) * styles.reshape(batch, 1, -1, 1, 1)
    if demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()
    if demodulate and fused_modconv:
        w = w * dcoefs.reshape(batch, -1, 1, 1, 1)

    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(batch, -1, 1, 1)
        x = conv2d_resample(x, weight.to(x.dtype), f=resample_filter, up=up, down=down,
                            padding=padding, flip_weight=flip_weight)
        if demodulate and noise is not None:
            return torch.addcmul(noise.to(x.dtype), x, dcoefs.to(x.dtype).reshape(batch, -1, 1, 1))
        if demodulate:
            return x * dcoefs.to(x.dtype).reshape(batch, -1, 1, 1)
        if noise is not None:
            return x + noise.to(x.dtype)
        return x

    x = x.reshape(1, -1, *x.shape[2:])
    w = w.reshape(-1, in_channels, kh, kw)
    x = conv2d_resample(x, w.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding,
                        groups=batch, flip_weight=flip_weight)
    x = x.reshape(batch, -1, *x.shape[2:])
    if noise is not None:
        x = x + noise.to(x.dtype)
    return x


class Conv2dLayer(torch.nn.Module):
    """Plain equalized-lr convolution; the generator uses it for the resnet skip path."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        bias: bool = True,
        activation: str = "linear",
        up: int = 1,
        down: int = 1,
        resample_filter: Sequence[float] = (1, 3, 3, 1),
        conv_clamp: Optional[float] = None,
        channels_last: bool = False,
        trainable: bool = True,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.activation = activation
        self.up = up
        self.down = down
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / np.sqrt(in_channels * (kernel_size ** 2))
        self.act_gain = ACTIVATIONS[activation].def_gain
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels])) if bias else None

    def forward(self, x: torch.Tensor, gain: float = 1) -> torch.Tensor:
        w = self.weight * self.weight_gain
        b = self.bias.to(x.dtype) if self.bias is not None else None
        x = conv2d_resample(x, w.to(x.dtype), f=self.resample_filter, up=self.up, down=self.down,
                            padding=self.padding, flip_weight=(self.up == 1))
        act_gain = self.act_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, b, act=self.activation, gain=act_gain, clamp=act_clamp)


class SynthesisLayer(torch.nn.Module):
    """Modulated 3x3 convolution + noise + bias + activation (conv0 upsamples by 2)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        kernel_size: int = 3,
        up: int = 1,
        use_noise: bool = True,
        activation: str = "lrelu",
        resample_filter: Sequence[float] = (1, 3, 3, 1),
        conv_clamp: Optional[float] = None,
        channels_last: bool = False,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.activation = activation
        self.conv_clamp = conv_clamp
        self.padding = kernel_size // 2
        self.act_gain = ACTIVATIONS[activation].def_gain

        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        if use_noise:
            self.noise_strength = torch.nn.Parameter(torch.zeros([]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random",
                fused_modconv: bool = True, gain: float = 1) -> torch.Tensor:
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        styles = self.affine(w)

        noise = None
        if self.use_noise and noise_mode == "random":
            noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device)
            noise = noise * self.noise_strength
        elif self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength

        x = modulated_conv2d(x, self.weight, styles, noise=noise, up=self.up, padding=self.padding,
                             resample_filter=self.resample_filter, flip_weight=(self.up == 1),
                             fused_modconv=fused_modconv)
        act_gain = self.act_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias.to(x.dtype), act=self.activation, gain=act_gain, clamp=act_clamp)

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, out_channels={self.out_channels}, w_dim={self.w_dim}, "
                f"resolution={self.resolution}, up={self.up}, activation={self.activation}")


class ToRGBLayer(torch.nn.Module):
    """1x1 modulated convolution (no demodulation) to image channels."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, kernel_size: int = 1,
                 conv_clamp: Optional[float] = None, channels_last: bool = False):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.w_dim = w_dim
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / np.sqrt(in_channels * (kernel_size ** 2))

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool = True) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused_modconv=fused_modconv)
        return bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)


class SynthesisBlock(torch.nn.Module):
    """One resolution: (const or 2x upsampling conv0) + conv1, and the image path (torgb/skip)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        img_channels: int,
        is_last: bool,
        architecture: str = "skip",
        resample_filter: Sequence[float] = (1, 3, 3, 1),
        conv_clamp: Optional[float] = 256,
        use_fp16: bool = False,
        fp16_channels_last: bool = False,
        fused_modconv_default: Union[bool, str] = True,
        **layer_kwargs: Any,
    ):
        if architecture not in ("orig", "skip", "resnet"):
            raise ValueError(f"unknown StyleGAN2 architecture {architecture!r}")
        super().__init__()
        self.in_channels = in_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.is_last = is_last
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.channels_last = use_fp16 and fp16_channels_last
        self.fused_modconv_default = fused_modconv_default
        self.num_conv = 0
        self.num_torgb = 0
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))

        if in_channels == 0:
            self.const = torch.nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim=w_dim, resolution=resolution, up=2,
                                        resample_filter=resample_filter, conv_clamp=conv_clamp, **layer_kwargs)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim=w_dim, resolution=resolution,
                                    conv_clamp=conv_clamp, **layer_kwargs)
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp)
            self.num_torgb += 1
        if in_channels != 0 and architecture == "resnet":
            self.skip = Conv2dLayer(in_channels, out_channels, kernel_size=1, bias=False, up=2,
                                    resample_filter=resample_filter)

    def forward(self, x: Optional[torch.Tensor], img: Optional[torch.Tensor], ws: torch.Tensor,
                force_fp32: bool = False, fused_modconv: Optional[bool] = None,
                noise_mode: str = "random") -> tuple[torch.Tensor, torch.Tensor]:
        w_iter = iter(ws.unbind(dim=1))
        device = ws.device
        low = reduced_precision(device)
        dtype = low if self.use_fp16 and not force_fp32 and low is not None else torch.float32
        if fused_modconv is None:
            fused_modconv = self.fused_modconv_default
            if fused_modconv == "inference_only":
                fused_modconv = not self.training
            # Grouped fp16 convolutions over a batch can overflow; keep those unfused.
            fused_modconv = bool(fused_modconv) and (dtype == torch.float32 or ws.shape[0] == 1)

        if self.in_channels == 0:
            x = self.const.to(dtype).unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
        else:
            x = x.to(dtype)

        if self.in_channels == 0:
            x = self.conv1(x, next(w_iter), noise_mode=noise_mode, fused_modconv=fused_modconv)
        elif self.architecture == "resnet":
            y = self.skip(x, gain=np.sqrt(0.5))
            x = self.conv0(x, next(w_iter), noise_mode=noise_mode, fused_modconv=fused_modconv)
            x = self.conv1(x, next(w_iter), noise_mode=noise_mode, fused_modconv=fused_modconv, gain=np.sqrt(0.5))
            x = y + x
        else:
            x = self.conv0(x, next(w_iter), noise_mode=noise_mode, fused_modconv=fused_modconv)
            x = self.conv1(x, next(w_iter), noise_mode=noise_mode, fused_modconv=fused_modconv)

        if img is not None:
            img = upsample2d(img, self.resample_filter)
        if self.is_last or self.architecture == "skip":
            y = self.torgb(x, next(w_iter), fused_modconv=fused_modconv).to(torch.float32)
            img = img + y if img is not None else y
        return x, img

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, architecture={self.architecture}, use_fp16={self.use_fp16}"


class SynthesisNetwork(torch.nn.Module):
    """ws [N, num_ws, w_dim] -> image [N, img_channels, R, R] through blocks b4 ... bR."""

    def __init__(
        self,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        channel_base: int = 32768,
        channel_max: int = 512,
        num_fp16_res: int = 4,
        **block_kwargs: Any,
    ):
        log2 = int(np.log2(img_resolution))
        if img_resolution < 4 or 2 ** log2 != img_resolution:
            raise ValueError(f"img_resolution must be a power of two >= 4, got {img_resolution}")
        super().__init__()
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = log2
        self.img_channels = img_channels
        self.num_fp16_res = num_fp16_res
        self.block_resolutions = [2 ** i for i in range(2, log2 + 1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        fp16_resolution = max(2 ** (log2 + 1 - num_fp16_res), 8)

        self.num_ws = 0
        for res in self.block_resolutions:
            in_channels = channels[res // 2] if res > 4 else 0
            is_last = res == img_resolution
            block = SynthesisBlock(in_channels, channels[res], w_dim=w_dim, resolution=res,
                                   img_channels=img_channels, is_last=is_last,
                                   use_fp16=(res >= fp16_resolution), **block_kwargs)
            self.num_ws += block.num_conv
            if is_last:
                self.num_ws += block.num_torgb
            setattr(self, f"b{res}", block)

    @property
    def partial_resolutions(self) -> list[int]:
        """The resolutions `forward(stop_at=...)` accepts: every block's with the skip architecture
        (each block adds its toRGB output to the running image, a valid picture at that size), else
        only the full one."""
        return list(self.block_resolutions) if self.b4.architecture == "skip" else [self.img_resolution]

    def forward(self, ws: torch.Tensor, noise_mode: str = "random", force_fp32: bool = False,
                fused_modconv: Optional[bool] = None, update_emas: bool = False,
                stop_at: Optional[int] = None) -> torch.Tensor:
        """The image; with `stop_at` (one of `partial_resolutions`), the running skip image after that
        block, [N, C, stop_at, stop_at], without running the blocks above it (coarse-to-fine inversion)."""
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f"ws must have shape [N, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}")
        if stop_at is not None and stop_at not in self.partial_resolutions:
            raise ValueError(f"stop_at must be one of {self.partial_resolutions}, got {stop_at!r}")
        ws = ws.to(torch.float32)
        x = img = None
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            block_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
            w_idx += block.num_conv
            x, img = block(x, img, block_ws, force_fp32=force_fp32, fused_modconv=fused_modconv,
                           noise_mode=noise_mode)
            if res == stop_at:
                break
        return img

    def extra_repr(self) -> str:
        return f"w_dim={self.w_dim}, num_ws={self.num_ws}, img_resolution={self.img_resolution}"


    def style_layers(self) -> list[StyleLayer]:
        """S in synthesis order: conv0 (from 8 px), conv1, then toRGB of each block."""
        layers: list[StyleLayer] = []
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            conv_names = ["conv0", "conv1"] if res > 4 else ["conv1"]
            for offset, name in enumerate(conv_names):
                layer = getattr(block, name)
                layers.append(StyleLayer(len(layers), f"b{res}.{name}", w_idx + offset, layer.in_channels, res, False))
            if block.is_last or block.architecture == "skip":
                layers.append(StyleLayer(len(layers), f"b{res}.torgb", w_idx + block.num_conv,
                                         block.torgb.in_channels, res, True))
            w_idx += block.num_conv
        return layers


class Generator(MappedGenerator):
    """StyleGAN2 generator. Accepts ADA's nested `synthesis_kwargs` as well as the flat form."""

    architecture = "stylegan2"
    synthesis_class = SynthesisNetwork

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, img_resolution: int, img_channels: int,
                 mapping_kwargs: Optional[dict] = None, synthesis_kwargs: Optional[dict] = None,
                 **flat_synthesis_kwargs: Any):
        super().__init__(z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_kwargs,
                         **{**(synthesis_kwargs or {}), **flat_synthesis_kwargs})
