"""StyleNeRF's radiance fields (`NeRFBlock`): a style-modulated foreground MLP and a plain background
MLP fed with a latent code, with the official parameter names.

Points are evaluated as [B, N, C] rows (N = rays x samples per batch element), so each 1x1
modulated convolution of the original is one batched matrix product.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Optional

import torch

from stylecore.networks.layers import FullyConnectedLayer
from stylecore.networks.stylegan2 import Conv2dLayer, ToRGBLayer
from stylecore.ops.bias_act import ACTIVATIONS, bias_act
from stylecore.ops.upfirdn2d import setup_filter

__all__ = ["NeRFBlock", "Style2Layer", "PlainToRGB", "positional_encoding", "modulated_linear"]

# Options of the original NeRFBlock that change the network; the released checkpoints leave them off.
_UNSUPPORTED_FLAGS = ("use_viewdirs", "use_skip", "add_rgb", "merge_sigma_feat", "no_sigma", "tcnn_backend",
                      "use_normal", "use_sdf", "disable_latents", "use_pos", "normalized_feat", "final_sigmoid_act")


def positional_encoding(p: torch.Tensor, n_freq: int, downscale: float = 1.0) -> torch.Tensor:
    """[B, N, D] coordinates -> [B, N, 2*D*n_freq]: per frequency 2^i*pi, sin of every axis then cos."""
    if downscale != 1:
        p = p / downscale
    # 2^i * pi rounded to p's precision (exact powers of two: the same values as the original's
    # float products), made on the device.
    freqs = torch.pow(2.0, torch.arange(n_freq, dtype=p.dtype, device=p.device)) * math.pi
    q = p.unsqueeze(-2) * freqs.unsqueeze(-1)  # [B, N, F, D], the same float32 products as the original
    return torch.stack([torch.sin(q), torch.cos(q)], dim=-2).flatten(-3)


def modulated_linear(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, demodulate: bool,
                     bias: Optional[torch.Tensor] = None, gain: float = 1.0) -> torch.Tensor:
    """`modulated_conv2d` for a 1x1 kernel over points x [B, N, I] (+ bias, times gain): one baddbmm.

    Kept separate from the 2-D version because a grouped convolution over 10^5 points per sample
    is about twice as slow on CPU as the equivalent batched matrix product; bias and gain are
    folded into the product (gain * (Wx + b) = (gain*W)x + gain*b) to save passes over the points.
    """
    w = weight.reshape(weight.shape[0], -1).unsqueeze(0) * styles.unsqueeze(1)  # [B, O, I]
    if demodulate:
        w = w * (w.square().sum(dim=2, keepdim=True) + 1e-8).rsqrt()
    return _linear(x, w, bias, gain)


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], gain: float = 1.0) -> torch.Tensor:
    """gain * (x @ weight^T + bias) for points [B, N, I] and a weight [O, I] or per-sample [B, O, I]."""
    wt = (weight * gain if gain != 1 else weight).to(x.dtype).transpose(-1, -2)
    if wt.ndim == 2:
        wt = wt.unsqueeze(0).expand(x.shape[0], -1, -1)
    if bias is None:
        return torch.bmm(x, wt)
    b = (bias * gain if gain != 1 else bias).to(x.dtype).reshape(1, 1, -1).expand(x.shape[0], 1, -1)
    return torch.baddbmm(b, x, wt)


class Style2Layer(torch.nn.Module):
    """A NeRF hidden layer on points [B, N, C]: modulated 1x1 conv + bias + activation (w_dim > 0),
    else linear + ReLU."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, activation: str = "lrelu",
                 resample_filter: Any = (1, 3, 3, 1), magnitude_ema_beta: float = -1):
        super().__init__()
        self.in_features = in_channels
        self.out_features = out_channels
        self.w_dim = w_dim
        self.activation = activation
        self.act_gain = ACTIVATIONS[activation].def_gain
        self.magnitude_ema_beta = magnitude_ema_beta
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))
        if w_dim > 0:
            self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
            self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, 1, 1]))
        else:
            bound = 1 / math.sqrt(in_channels)
            self.weight = torch.nn.Parameter(torch.empty([out_channels, in_channels]).uniform_(-bound, bound))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        if magnitude_ema_beta > 0:
            self.register_buffer("w_avg", torch.ones([]))

    def forward(self, x: torch.Tensor, w: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self.magnitude_ema_beta > 0:
            x = x * self.w_avg.rsqrt()
        if self.w_dim > 0:
            styles = self.affine(w)
            if self.activation == "lrelu":  # a positive gain commutes with leaky ReLU: folded into the product
                x = modulated_linear(x, self.weight, styles, demodulate=True, bias=self.bias, gain=self.act_gain)
                return torch.nn.functional.leaky_relu_(x, 0.2)
            x = modulated_linear(x, self.weight, styles, demodulate=True, bias=self.bias)
            return bias_act(x, None, dim=2, act=self.activation, gain=self.act_gain)
        return torch.relu_(_linear(x, self.weight, self.bias))


class PlainToRGB(torch.nn.Module):
    """The style-free ToRGBLayer of the original (w_dim 0): a linear map with stored-scale weights."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        bound = 1 / math.sqrt(in_channels)
        self.weight = torch.nn.Parameter(torch.empty([out_channels, in_channels]).uniform_(-bound, bound))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x: torch.Tensor, w: Optional[torch.Tensor] = None) -> torch.Tensor:
        return _linear(x, self.weight, self.bias)


def _to_rgb(layer: torch.nn.Module, x: torch.Tensor, w: Optional[torch.Tensor]) -> torch.Tensor:
    """Apply a NeRF head: modulated (StyleGAN2 ToRGBLayer, no demodulation) or plain."""
    if isinstance(layer, ToRGBLayer):
        styles = layer.affine(w) * layer.weight_gain
        y = modulated_linear(x, layer.weight, styles, demodulate=False, bias=layer.bias)
        return y if layer.conv_clamp is None else y.clamp(-layer.conv_clamp, layer.conv_clamp)
    return layer(x)


def _conv1x1(layer: Conv2dLayer, x: torch.Tensor) -> torch.Tensor:
    """A 1x1 Conv2dLayer applied to points [B, N, C]."""
    y = _linear(x, layer.weight.reshape(layer.weight.shape[0], -1) * layer.weight_gain, layer.bias)
    return bias_act(y, None, dim=2, act=layer.activation, gain=layer.act_gain)


class NeRFBlock(torch.nn.Module):
    """Density and features of 3-D points (or NeRF++ 4-D background points) from ws or a latent z.

    Official names: fc_in, blocks.{i}, sigma_out, feat_out, to_rgb. Supports the options the
    released checkpoints use; any other option value is refused rather than silently ignored.
    """

    def __init__(self, nerf_kwargs: Mapping[str, Any]):
        super().__init__()
        kw = dict(nerf_kwargs)
        self.input_dim = int(kw.get("input_dim", 3))
        self.w_dim = int(kw.get("w_dim", 512))
        self.z_dim = int(kw.get("z_dim", 0))
        self.rgb_out_dim = int(kw.get("rgb_out_dim", 128))
        self.hidden_size = int(kw.get("hidden_size", 128))
        self.n_blocks = int(kw.get("n_blocks", 8))
        self.img_channels = int(kw.get("img_channels", 3))
        self.activation = str(kw.get("activation", "lrelu"))
        self.predict_rgb = bool(kw.get("predict_rgb", False))
        self.inverse_sphere = bool(kw.get("inverse_sphere", False))
        self.n_freq_posenc = int(kw.get("n_freq_posenc", 10))
        self.downscale_p_by = float(kw.get("downscale_p_by", 1))
        self.magnitude_ema_beta = float(kw.get("magnitude_ema_beta", -1))
        for key in _UNSUPPORTED_FLAGS:
            if kw.get(key):
                raise ValueError(f"StyleNeRF NeRFBlock option {key}={kw[key]!r} is not supported")
        if int(kw.get("shuffle_factor", 1)) != 1:
            raise ValueError("StyleNeRF NeRFBlock shuffle_factor other than 1 is not supported")
        if kw.get("positional_encoding", "normal") != "normal":
            raise ValueError(f"positional encoding {kw['positional_encoding']!r} is not supported")
        if kw.get("skips"):
            raise ValueError("NeRFBlock skip connections are not supported")

        dim = (self.input_dim + (1 if self.inverse_sphere else 0)) * self.n_freq_posenc * 2
        w_dim = self.w_dim
        if self.z_dim > 0:  # a latent input replaces the styles
            w_dim, dim = 0, dim + self.z_dim
        self.style_dim = w_dim
        self.fc_in = Style2Layer(dim, self.hidden_size, w_dim, activation=self.activation)
        self.blocks = torch.nn.ModuleList([
            Style2Layer(self.hidden_size, self.hidden_size, w_dim, activation=self.activation,
                        magnitude_ema_beta=self.magnitude_ema_beta) for _ in range(self.n_blocks - 1)])
        self.sigma_out = self._head(self.hidden_size, 1, w_dim)
        self.feat_out = self._head(self.hidden_size, self.rgb_out_dim, w_dim)
        self.num_ws = self.n_blocks + 2 if w_dim > 0 else 0
        if self.predict_rgb:
            self.to_rgb = Conv2dLayer(self.rgb_out_dim, self.img_channels, kernel_size=1, activation="linear")

    @staticmethod
    def _head(in_channels: int, out_channels: int, w_dim: int) -> torch.nn.Module:
        return ToRGBLayer(in_channels, out_channels, w_dim, kernel_size=1) if w_dim > 0 else PlainToRGB(in_channels, out_channels)

    @property
    def out_channels(self) -> int:
        return self.rgb_out_dim + (self.img_channels if self.predict_rgb else 0)

    def forward(self, points: torch.Tensor, ws: Optional[torch.Tensor] = None,
                z: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """points [B, N, D] -> (features [B, N, out_channels] as [rgb, feat], raw density [B, N])."""
        x = positional_encoding(points, self.n_freq_posenc, self.downscale_p_by)
        if self.z_dim > 0:
            if z is None:
                raise ValueError("this NeRF block needs its latent code z")
            x = torch.cat([x, z[:, None, :].to(x.dtype).expand(-1, x.shape[1], -1)], dim=2)
        style = (lambda i: ws[:, i]) if self.style_dim > 0 else (lambda i: None)
        x = self.fc_in(x, style(0))
        for idx, layer in enumerate(self.blocks):
            x = layer(x, style(idx + 1))
        sigma = _to_rgb(self.sigma_out, x, style(self.n_blocks))[..., 0]
        feat = _to_rgb(self.feat_out, x, style(self.n_blocks + 1))
        if self.predict_rgb:
            feat = torch.cat([_conv1x1(self.to_rgb, feat), feat], dim=2)
        return feat, sigma
