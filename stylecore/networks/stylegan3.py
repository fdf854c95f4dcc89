"""StyleGAN3 (alias-free) generator, configs T and R, with the official names and signatures.

Parameter and buffer names match the official `networks_stylegan3.py`, so official state dicts
load with `strict=True`. Beyond the official behaviour:

* `transform` can be passed per call (`[3, 3]` or `[N, 3, 3]`) instead of writing the shared
  `synthesis.input.transform` buffer, so concurrent requests never share mutable state; the
  buffer is still honoured when no per-call transform is given.
* `forward` copies nothing from the host and never synchronises: the sampling grid of the
  input layer is a non-persistent buffer (`synthesis.input.grid`), recomputed by
  `init_constants()` and after every `load_state_dict`, so graphs can be captured.
* fp16 layers run in float16 on CUDA, in bfloat16 on the CPU with STYLECORE_CPU_BF16=1, else float32.
"""
from __future__ import annotations

import math
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

from stylecore.networks.filters import design_lowpass_filter
from stylecore.networks.styles import StyleLayer
from stylecore.networks.layers import FullyConnectedLayer, MappedGenerator, reduced_precision
from stylecore.ops.filtered_lrelu import filtered_lrelu

__all__ = ["SynthesisInput", "SynthesisLayer", "SynthesisNetwork", "Generator", "modulated_conv2d"]


def modulated_conv2d(
    x: torch.Tensor,
    w: torch.Tensor,
    s: torch.Tensor,
    demodulate: bool = True,
    padding: int = 0,
    input_gain: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Per-sample style-modulated convolution (correlation), run as one grouped conv.

    x: [N, I, H, W]; w: [O, I, k, k]; s: [N, I] styles. With `demodulate`, weight and styles are
    first normalised (keeps fp16 in range; cancels under demodulation), then each output
    channel of the modulated weight is scaled to unit norm. `input_gain` scales input channels.
    """
    batch_size = x.shape[0]
    out_channels, in_channels, kh, kw = w.shape
    if s.shape != (batch_size, in_channels):
        raise ValueError(f"styles must have shape [{batch_size}, {in_channels}], got {tuple(s.shape)}")

    if demodulate:
        w = w * w.square().mean([1, 2, 3], keepdim=True).rsqrt()
        s = s * s.square().mean().rsqrt()

    w = w.unsqueeze(0) * s.reshape(batch_size, 1, in_channels, 1, 1)  # [N, O, I, k, k]
    if demodulate:
        d = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # [N, O]
        w = w * d.reshape(batch_size, out_channels, 1, 1, 1)
    if input_gain is not None:
        input_gain = input_gain.expand(batch_size, in_channels)
        w = w * input_gain.reshape(batch_size, 1, in_channels, 1, 1)

    x = x.reshape(1, batch_size * in_channels, *x.shape[2:])
    w = w.reshape(batch_size * out_channels, in_channels, kh, kw)
    x = F.conv2d(x, w.to(x.dtype), padding=padding, groups=batch_size)
    return x.reshape(batch_size, out_channels, *x.shape[2:])


class SynthesisInput(torch.nn.Module):
    """Fourier features: band-limited sinusoids, rotated/translated by an affine of w0.

    Continuous features make sub-pixel translation and rotation exact at the input.
    """

    def __init__(self, w_dim: int, channels: int, size: Union[int, Sequence[int]], sampling_rate: float,
                 bandwidth: float):
        super().__init__()
        self.w_dim = w_dim
        self.channels = channels
        self.size = np.broadcast_to(np.asarray(size), [2])
        self.sampling_rate = sampling_rate
        self.bandwidth = bandwidth

        # Random frequencies inside a disc of radius `bandwidth`, random phases.
        freqs = torch.randn([self.channels, 2])
        radii = freqs.square().sum(dim=1, keepdim=True).sqrt()
        freqs = freqs / (radii * radii.square().exp().pow(0.25))
        freqs = freqs * bandwidth
        phases = torch.rand([self.channels]) - 0.5

        self.weight = torch.nn.Parameter(torch.randn([self.channels, self.channels]))
        self.affine = FullyConnectedLayer(w_dim, 4, weight_init=0, bias_init=[1, 0, 0, 0])
        self.register_buffer("transform", torch.eye(3, 3))  # user-specified inverse transform wrt. output image
        self.register_buffer("freqs", freqs)
        self.register_buffer("phases", phases)
        self.register_buffer("grid", self._make_grid(freqs.device), persistent=False)
        self.register_load_state_dict_post_hook(_recompute_constants_after_load)

    def _make_grid(self, device: torch.device) -> torch.Tensor:
        """Sampling positions [1, H, W, 2] (x first) in units of the full image extent."""
        sx, sy = int(self.size[0]), int(self.size[1])
        theta = torch.zeros([1, 2, 3], dtype=torch.float32, device=device)
        theta[0, 0, 0] = 0.5 * sx / self.sampling_rate
        theta[0, 1, 1] = 0.5 * sy / self.sampling_rate
        return F.affine_grid(theta, [1, 1, sy, sx], align_corners=False)

    @torch.no_grad()
    def init_constants(self) -> None:
        """Recompute the non-persistent sampling grid on the module's current device.

        Needed after constructing on the `meta` device (or `to_empty`) and loading weights.
        """
        self.grid = self._make_grid(self.freqs.device)

    def forward(self, w: torch.Tensor, transform: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Features [N, channels, size_y, size_x] (float32) for w0 [N, w_dim].

        `transform` ([3, 3] or [N, 3, 3]) overrides the `transform` buffer for this call only.
        """
        if self.grid.is_meta and not w.is_meta:
            raise RuntimeError("SynthesisInput.grid is on the meta device: call init_constants() after loading")
        batch_size = w.shape[0]
        transforms = self.transform if transform is None else transform.to(device=w.device, dtype=torch.float32)
        if transforms.shape[-2:] != (3, 3) or transforms.ndim not in (2, 3):
            raise ValueError(f"transform must have shape [3, 3] or [N, 3, 3], got {tuple(transforms.shape)}")
        if transforms.ndim == 2:
            transforms = transforms.unsqueeze(0)
        elif transforms.shape[0] not in (1, batch_size):
            raise ValueError(f"transform batch {transforms.shape[0]} does not match w batch {batch_size}")
        freqs = self.freqs.unsqueeze(0)  # [1, C, 2]
        phases = self.phases.unsqueeze(0)  # [1, C]

        # Per-sample rotation and translation from w0, normalised by the rotation part.
        t = self.affine(w)  # (r_c, r_s, t_x, t_y)
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        rc, rs, tx, ty = t.unbind(dim=1)
        zero = torch.zeros_like(rc)
        one = torch.ones_like(rc)
        m_r = torch.stack([rc, -rs, zero, rs, rc, zero, zero, zero, one], dim=1).reshape(batch_size, 3, 3)
        m_t = torch.stack([one, zero, -tx, zero, one, -ty, zero, zero, one], dim=1).reshape(batch_size, 3, 3)
        transforms = m_r @ m_t @ transforms  # [N, 3, 3]

        # Transform frequencies and phases; fade out frequencies pushed beyond the band.
        phases = phases + (freqs @ transforms[:, :2, 2:]).squeeze(2)
        freqs = freqs @ transforms[:, :2, :2]
        amplitudes = (1 - (freqs.norm(dim=2) - self.bandwidth) / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)

        # Sample the sinusoids on the grid, then mix channels.
        x = (self.grid.unsqueeze(3) @ freqs.permute(0, 2, 1).unsqueeze(1).unsqueeze(2)).squeeze(3)  # [N, H, W, C]
        x = x + phases.unsqueeze(1).unsqueeze(2)
        x = torch.sin(x * (math.pi * 2))
        x = x * amplitudes.unsqueeze(1).unsqueeze(2)
        weight = self.weight / math.sqrt(self.channels)
        x = x @ weight.t()
        return x.permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        return (f"w_dim={self.w_dim:d}, channels={self.channels:d}, size={list(self.size)}, "
                f"sampling_rate={self.sampling_rate:g}, bandwidth={self.bandwidth:g}")


def _recompute_constants_after_load(module: torch.nn.Module, incompatible_keys: Any) -> None:
    """load_state_dict post hook: non-persistent constants follow the (possibly new) device."""
    module.init_constants()


class SynthesisLayer(torch.nn.Module):
    """Modulated conv, then filtered leaky ReLU at twice the target rate, then decimation."""

    def __init__(
        self,
        w_dim: int,
        is_torgb: bool,
        is_critically_sampled: bool,
        use_fp16: bool,
        in_channels: int,
        out_channels: int,
        in_size: Union[int, Sequence[int]],
        out_size: Union[int, Sequence[int]],
        in_sampling_rate: float,
        out_sampling_rate: float,
        in_cutoff: float,
        out_cutoff: float,
        in_half_width: float,
        out_half_width: float,
        conv_kernel: int = 3,
        filter_size: int = 6,
        lrelu_upsampling: int = 2,
        use_radial_filters: bool = False,
        conv_clamp: Optional[float] = 256,
        magnitude_ema_beta: float = 0.999,
    ):
        super().__init__()
        self.w_dim = w_dim
        self.is_torgb = is_torgb
        self.is_critically_sampled = is_critically_sampled
        self.use_fp16 = use_fp16
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.in_size = np.broadcast_to(np.asarray(in_size), [2])
        self.out_size = np.broadcast_to(np.asarray(out_size), [2])
        self.in_sampling_rate = in_sampling_rate
        self.out_sampling_rate = out_sampling_rate
        self.tmp_sampling_rate = max(in_sampling_rate, out_sampling_rate) * (1 if is_torgb else lrelu_upsampling)
        self.in_cutoff = in_cutoff
        self.out_cutoff = out_cutoff
        self.in_half_width = in_half_width
        self.out_half_width = out_half_width
        self.conv_kernel = 1 if is_torgb else conv_kernel
        self.conv_clamp = conv_clamp
        self.magnitude_ema_beta = magnitude_ema_beta

        self.affine = FullyConnectedLayer(self.w_dim, self.in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(
            torch.randn([self.out_channels, self.in_channels, self.conv_kernel, self.conv_kernel]))
        self.bias = torch.nn.Parameter(torch.zeros([self.out_channels]))
        self.register_buffer("magnitude_ema", torch.ones([]))

        # Upsampling filter (1-D separable).
        self.up_factor = int(np.rint(self.tmp_sampling_rate / self.in_sampling_rate))
        if self.in_sampling_rate * self.up_factor != self.tmp_sampling_rate:
            raise ValueError("tmp_sampling_rate must be an integer multiple of in_sampling_rate")
        self.up_taps = filter_size * self.up_factor if self.up_factor > 1 and not self.is_torgb else 1
        self.register_buffer("up_filter", self._filter(
            numtaps=self.up_taps, cutoff=self.in_cutoff, width=self.in_half_width * 2, fs=self.tmp_sampling_rate))

        # Downsampling filter (radial 2-D for non-critical layers of config R).
        self.down_factor = int(np.rint(self.tmp_sampling_rate / self.out_sampling_rate))
        if self.out_sampling_rate * self.down_factor != self.tmp_sampling_rate:
            raise ValueError("tmp_sampling_rate must be an integer multiple of out_sampling_rate")
        self.down_taps = filter_size * self.down_factor if self.down_factor > 1 and not self.is_torgb else 1
        self.down_radial = bool(use_radial_filters and not self.is_critically_sampled)
        self.register_buffer("down_filter", self._filter(
            numtaps=self.down_taps, cutoff=self.out_cutoff, width=self.out_half_width * 2,
            fs=self.tmp_sampling_rate, radial=self.down_radial))

        # Padding that makes the output exactly out_size after conv (full), up, filters, down.
        pad_total = (self.out_size - 1) * self.down_factor + 1
        pad_total -= (self.in_size + self.conv_kernel - 1) * self.up_factor
        pad_total += self.up_taps + self.down_taps - 2
        pad_lo = (pad_total + self.up_factor) // 2
        pad_hi = pad_total - pad_lo
        self.padding = [int(pad_lo[0]), int(pad_hi[0]), int(pad_lo[1]), int(pad_hi[1])]

    def _filter(self, **kwargs: Any) -> Optional[torch.Tensor]:
        f = design_lowpass_filter(**kwargs)
        return None if f is None else f.to(self.weight.device)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random", force_fp32: bool = False,
                update_emas: bool = False) -> torch.Tensor:
        """[N, in, in_size] -> [N, out, out_size]; `noise_mode` is accepted and ignored (no noise)."""
        if update_emas:
            with torch.no_grad():
                magnitude_cur = x.detach().to(torch.float32).square().mean()
                self.magnitude_ema.copy_(magnitude_cur.lerp(self.magnitude_ema, self.magnitude_ema_beta))
        input_gain = self.magnitude_ema.rsqrt()

        styles = self.affine(w)
        if self.is_torgb:
            styles = styles * (1 / math.sqrt(self.in_channels * (self.conv_kernel ** 2)))

        low = reduced_precision(x.device)
        dtype = low if self.use_fp16 and not force_fp32 and low is not None else torch.float32
        x = modulated_conv2d(x.to(dtype), self.weight, styles, demodulate=not self.is_torgb,
                             padding=self.conv_kernel - 1, input_gain=input_gain)

        gain = 1 if self.is_torgb else math.sqrt(2)
        slope = 1 if self.is_torgb else 0.2
        x = filtered_lrelu(x, fu=self.up_filter, fd=self.down_filter, b=self.bias.to(x.dtype), up=self.up_factor,
                           down=self.down_factor, padding=self.padding, gain=gain, slope=slope, clamp=self.conv_clamp)
        return x

    def extra_repr(self) -> str:
        return "\n".join([
            f"w_dim={self.w_dim:d}, is_torgb={self.is_torgb}, is_critically_sampled={self.is_critically_sampled}, "
            f"use_fp16={self.use_fp16},",
            f"in_sampling_rate={self.in_sampling_rate:g}, out_sampling_rate={self.out_sampling_rate:g},",
            f"in_cutoff={self.in_cutoff:g}, out_cutoff={self.out_cutoff:g},",
            f"in_half_width={self.in_half_width:g}, out_half_width={self.out_half_width:g},",
            f"in_size={list(self.in_size)}, out_size={list(self.out_size)},",
            f"in_channels={self.in_channels:d}, out_channels={self.out_channels:d}"])


class SynthesisNetwork(torch.nn.Module):
    """ws [N, num_ws, w_dim] -> image; frequencies and sizes follow a fixed per-layer schedule."""

    def __init__(
        self,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        channel_base: int = 32768,
        channel_max: int = 512,
        num_layers: int = 14,
        num_critical: int = 2,
        first_cutoff: float = 2,
        first_stopband: float = 2 ** 2.1,
        last_stopband_rel: float = 2 ** 0.3,
        margin_size: int = 10,
        output_scale: float = 0.25,
        num_fp16_res: int = 4,
        **layer_kwargs: Any,
    ):
        super().__init__()
        self.w_dim = w_dim
        self.num_ws = num_layers + 2
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.num_layers = num_layers
        self.num_critical = num_critical
        self.margin_size = margin_size
        self.output_scale = output_scale
        self.num_fp16_res = num_fp16_res

        # Per-layer schedule: cutoff and stopband grow geometrically until the critical layers.
        last_cutoff = img_resolution / 2
        last_stopband = last_cutoff * last_stopband_rel
        exponents = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1)
        cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** exponents
        stopbands = first_stopband * (last_stopband / first_stopband) ** exponents
        sampling_rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, img_resolution))))
        half_widths = np.maximum(stopbands, sampling_rates / 2) - cutoffs
        sizes = sampling_rates + margin_size * 2
        sizes[-2:] = img_resolution
        channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
        channels[-1] = img_channels

        self.input = SynthesisInput(w_dim=self.w_dim, channels=int(channels[0]), size=int(sizes[0]),
                                    sampling_rate=sampling_rates[0], bandwidth=cutoffs[0])
        self.layer_names: list[str] = []
        for idx in range(num_layers + 1):
            prev = max(idx - 1, 0)
            layer = SynthesisLayer(
                w_dim=self.w_dim,
                is_torgb=(idx == num_layers),
                is_critically_sampled=(idx >= num_layers - num_critical),
                use_fp16=bool(sampling_rates[idx] * (2 ** num_fp16_res) > img_resolution),
                in_channels=int(channels[prev]), out_channels=int(channels[idx]),
                in_size=int(sizes[prev]), out_size=int(sizes[idx]),
                in_sampling_rate=int(sampling_rates[prev]), out_sampling_rate=int(sampling_rates[idx]),
                in_cutoff=cutoffs[prev], out_cutoff=cutoffs[idx],
                in_half_width=half_widths[prev], out_half_width=half_widths[idx],
                **layer_kwargs)
            name = f"L{idx}_{layer.out_size[0]}_{layer.out_channels}"
            setattr(self, name, layer)
            self.layer_names.append(name)

    @torch.no_grad()
    def init_constants(self) -> None:
        """Recompute non-persistent buffers (the input grid) on the module's current device."""
        self.input.init_constants()

    def forward(self, ws: torch.Tensor, noise_mode: str = "random", force_fp32: bool = False,
                update_emas: bool = False, transform: Optional[torch.Tensor] = None) -> torch.Tensor:
        """ws [N, num_ws, w_dim] -> image [N, img_channels, R, R] float32.

        `transform` ([3, 3] or [N, 3, 3]) is used instead of `input.transform` for this call only.
        """
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f"ws must have shape [N, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}")
        ws = ws.to(torch.float32).unbind(dim=1)
        x = self.input(ws[0], transform=transform)
        for name, w in zip(self.layer_names, ws[1:]):
            x = getattr(self, name)(x, w, noise_mode=noise_mode, force_fp32=force_fp32, update_emas=update_emas)
        if self.output_scale != 1:
            x = x * self.output_scale
        return x.to(torch.float32)

    def style_layers(self) -> list[StyleLayer]:
        """S in synthesis order: one entry per layer L0 ... L14 (the last is toRGB); W+ row 0 feeds the input."""
        return [StyleLayer(i, name, i + 1, getattr(self, name).in_channels, int(getattr(self, name).in_size[0]),
                           bool(getattr(self, name).is_torgb)) for i, name in enumerate(self.layer_names)]

    def extra_repr(self) -> str:
        return (f"w_dim={self.w_dim:d}, num_ws={self.num_ws:d}, img_resolution={self.img_resolution:d}, "
                f"img_channels={self.img_channels:d}, num_layers={self.num_layers:d}, "
                f"num_critical={self.num_critical:d}, margin_size={self.margin_size:d}, "
                f"num_fp16_res={self.num_fp16_res:d}")


class Generator(MappedGenerator):
    """StyleGAN3 generator (configs T and R); `transform=` reaches SynthesisInput per call."""

    architecture = "stylegan3"
    synthesis_class = SynthesisNetwork
    mapping_defaults = {"num_layers": 2, "lr_multiplier": 0.01, "w_avg_beta": 0.998}
