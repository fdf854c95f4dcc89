"""Layers shared by the StyleGAN2 and StyleGAN3 generators, with the official parameter names."""
from __future__ import annotations

import os
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch

from stylecore.ops.bias_act import bias_act


def reduced_precision(device: torch.device) -> Optional[torch.dtype]:
    """The dtype of the layers a checkpoint marks for fp16, on `device`; None: float32 throughout.

    float16 on CUDA, as the models were trained. On the CPU float16 is slow, but bfloat16 runs about
    twice as fast as float32 on CPUs with AVX-512 BF16 or AMX; it is opt-in (STYLECORE_CPU_BF16=1)
    because its 8-bit mantissa moves pixels by about 1e-2.
    """
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and os.environ.get("STYLECORE_CPU_BF16", "").strip().lower() in ("1", "true", "yes"):
        return torch.bfloat16
    return None


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scale each vector to unit root-mean-square (the 'pixel norm' of the mapping input)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


class FullyConnectedLayer(torch.nn.Module):
    """Equalized-learning-rate linear layer: weights are stored unscaled, scaled at run time."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        activation: str = "linear",
        lr_multiplier: float = 1.0,
        weight_init: float = 1.0,
        bias_init: Union[float, Sequence[float]] = 0.0,
    ):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) * (weight_init / lr_multiplier))
        bias_init_arr = np.broadcast_to(np.asarray(bias_init, dtype=np.float32), [out_features])
        self.bias = torch.nn.Parameter(torch.from_numpy(bias_init_arr / lr_multiplier)) if bias else None
        self.weight_gain = lr_multiplier / np.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, act=self.activation)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features:d}, out_features={self.out_features:d}, activation={self.activation:s}"


class MappingNetwork(torch.nn.Module):
    """z (+ class label) -> w, broadcast to num_ws, with w_avg truncation.

    One class serves both code bases: StyleGAN3's mapping is StyleGAN2's with embed and
    layer widths equal to w_dim.
    """

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        num_ws: Optional[int],
        num_layers: int = 8,
        embed_features: Optional[int] = None,
        layer_features: Optional[int] = None,
        activation: str = "lrelu",
        lr_multiplier: float = 0.01,
        w_avg_beta: Optional[float] = 0.998,
    ):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta

        if embed_features is None:
            embed_features = w_dim
        if c_dim == 0:
            embed_features = 0
        if layer_features is None:
            layer_features = w_dim
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]

        self.embed = FullyConnectedLayer(c_dim, embed_features) if c_dim > 0 else None
        for idx in range(num_layers):
            layer = FullyConnectedLayer(features[idx], features[idx + 1], activation=activation,
                                        lr_multiplier=lr_multiplier)
            setattr(self, f"fc{idx}", layer)
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(
        self,
        z: Optional[torch.Tensor],
        c: Optional[torch.Tensor],
        truncation_psi: float = 1,
        truncation_cutoff: Optional[int] = None,
        update_emas: bool = False,
        skip_w_avg_update: bool = False,
    ) -> torch.Tensor:
        x = None
        if self.z_dim > 0:
            x = normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            if c is None or c.shape[-1] != self.c_dim:
                raise ValueError(f"this generator is conditional: pass c with {self.c_dim} columns")
            y = normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1) if x is not None else y

        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)

        if update_emas and not skip_w_avg_update and hasattr(self, "w_avg"):
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))

        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])

        if truncation_psi != 1:
            if self.num_ws is None:
                return self.w_avg.lerp(x, truncation_psi)
            cutoff = self.num_ws if truncation_cutoff is None else int(truncation_cutoff)
            x = torch.cat([self.w_avg.lerp(x[:, :cutoff], truncation_psi), x[:, cutoff:]], dim=1)
        return x

    def extra_repr(self) -> str:
        return f"z_dim={self.z_dim:d}, c_dim={self.c_dim:d}, w_dim={self.w_dim:d}, num_ws={self.num_ws}"


class MappedGenerator(torch.nn.Module):
    """z (+ c) -> mapping -> ws -> synthesis -> image, with the official attributes and call.

    Subclasses name their synthesis network and the mapping defaults of their code base.
    """

    architecture: str  # "stylegan2" or "stylegan3": what the network is, for techniques that differ by it
    synthesis_class: type
    mapping_defaults: dict[str, Any] = {}

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        mapping_kwargs: Optional[dict[str, Any]] = None,
        **synthesis_kwargs: Any,
    ):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.synthesis = self.synthesis_class(w_dim=w_dim, img_resolution=img_resolution,
                                              img_channels=img_channels, **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws,
                                      **{**self.mapping_defaults, **dict(mapping_kwargs or {})})

    @torch.no_grad()
    def init_constants(self) -> None:
        """Recompute non-persistent buffers on the current device (after meta construction)."""
        if hasattr(self.synthesis, "init_constants"):
            self.synthesis.init_constants()

    def forward(self, z: torch.Tensor, c: Optional[torch.Tensor] = None, truncation_psi: float = 1,
                truncation_cutoff: Optional[int] = None, update_emas: bool = False,
                **synthesis_kwargs: Any) -> torch.Tensor:
        """Image [N, img_channels, R, R] for latents z [N, z_dim] and labels c [N, c_dim]."""
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_emas=update_emas)
        return self.synthesis(ws, update_emas=update_emas, **synthesis_kwargs)
