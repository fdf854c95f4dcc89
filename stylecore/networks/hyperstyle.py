"""HyperStyle's networks (Alaluf et al. 2022): the hypernetwork that predicts per-layer weight offsets
of a StyleGAN2 generator, and the W encoder that gives its starting code.

Attribute names and registration order are those of the released checkpoints, so the `hypernet.*`
part of `hyperstyle_ffhq.pt` and the `encoder.*` part of `faces_w_encoder.pt` load strictly:

* `SharedWeightsHyperNetResNet`: `conv1`, `bn1`, `relu` (PReLU), `body.{0..15}` (a ResNet-34 trunk as
  in ReStyle's ResNet encoders), `shared_weight_hypernet.{w1,b1,w2,b2}`, `refinement_blocks.{i}.*`.
  The released file tunes generator layers by *index* in the rosinality order (`layer_names`); the
  3x3 convolutions at indices `SHARED_LAYERS` (512->512 at 1024 px) get a `HyperRefinementBlock`
  that feeds a code through the one shared hypernetwork, every other tuned layer its own
  `RefinementBlock`. The shared module is registered under each hyper block too
  (`refinement_blocks.{i}.hypernet.*`), so a state dict lists its tensors under several names.
* `WEncoder`: IR-SE50 (`input_layer`, `body`), average pool, one equalized linear layer -> one w,
  repeated over the W+ rows.

Widths are parameters only so that tests can build narrow copies; the released files use the
defaults (ResNet-34 / IR-SE50 widths, 512-wide codes, inner widths 128 and 256).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple, Optional

import torch
from torch import nn

from stylecore.networks.encoders_backbone import (DEFAULT_WIDTHS, add_resnet_stem, irse50_body, irse50_input_layer,
                                                  resnet34_body)
from stylecore.networks.layers import FullyConnectedLayer

__all__ = ["LayerShape", "SHARED_LAYERS", "FEATURE_SPATIAL", "layer_names", "layer_shapes", "SharedWeightsHypernet",
           "HyperRefinementBlock", "RefinementBlock", "SharedWeightsHyperNetResNet", "WEncoder"]

SHARED_LAYERS = (0, 2, 3, 5, 6, 8, 9, 11, 12)  # layer indices predicted through the shared hypernetwork
FEATURE_SPATIAL = 16  # the trunk's output size for the 256 px input every refinement block is built for


class LayerShape(NamedTuple):
    """A generator layer's weight shape, as the offsets are predicted: [out, in, kernel, kernel]."""

    out_channels: int
    in_channels: int
    kernel_size: int


def layer_names(resolution: int) -> list[str]:
    """The synthesis parameter each offset index tunes, in HyperStyle's (rosinality) order:
    b4.conv1, b4.torgb, then conv0 / conv1 / torgb of each block from 8 px up (26 at 1024 px)."""
    names = ["b4.conv1.weight", "b4.torgb.weight"]
    for j in range(int(math.log2(resolution)) - 2):
        res = 2 ** (j + 3)
        names += [f"b{res}.conv0.weight", f"b{res}.conv1.weight", f"b{res}.torgb.weight"]
    return names


def layer_shapes(synthesis: nn.Module) -> list[LayerShape]:
    """The weight shape of every tunable layer of an official StyleGAN2 synthesis network, by index."""
    params = dict(synthesis.named_parameters())
    shapes = []
    for name in layer_names(int(synthesis.img_resolution)):
        out_c, in_c, k, _ = params[name].shape
        shapes.append(LayerShape(int(out_c), int(in_c), int(k)))
    return shapes


def _conv_stack(in_c: int, inner_c: int, out_c: int, strides: Sequence[int]) -> nn.Sequential:
    """3x3 convs with LeakyReLU (slope 0.01) after each: in -> inner ... inner -> out."""
    widths = [in_c] + [inner_c] * (len(strides) - 1) + [out_c]
    layers: list[nn.Module] = []
    for i, stride in enumerate(strides):
        layers += [nn.Conv2d(widths[i], widths[i + 1], 3, stride, 1), nn.LeakyReLU()]
    return nn.Sequential(*layers)


class SharedWeightsHypernet(nn.Module):
    """A code z [B, z_dim] -> a 3x3 kernel offset [B, out, in, 3, 3] through two learned matrices.

    h = z·w2 + b2 is read as `in_size` vectors of length z_dim, each mapped by w1 (+ b1) to out·9
    values; the [B, in, out·9] result is *reinterpreted* (a view, not a transpose) as [B, out, in, 3, 3],
    exactly as the released weights were trained.
    """

    def __init__(self, z_dim: int = 512, in_size: int = 512, out_size: int = 512, kernel_size: int = 3):
        super().__init__()
        self.z_dim, self.in_size, self.out_size, self.kernel_size = z_dim, in_size, out_size, kernel_size
        self.w1 = nn.Parameter(torch.empty(z_dim, out_size * kernel_size * kernel_size))
        self.b1 = nn.Parameter(torch.empty(out_size * kernel_size * kernel_size))
        self.w2 = nn.Parameter(torch.empty(z_dim, in_size * z_dim))
        self.b2 = nn.Parameter(torch.empty(in_size * z_dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        batch = z.shape[0]
        h = (torch.matmul(z, self.w2) + self.b2).view(batch, self.in_size, self.z_dim)
        kernel = torch.matmul(h, self.w1) + self.b1
        return kernel.view(batch, self.out_size, self.in_size, self.kernel_size, self.kernel_size)


class HyperRefinementBlock(nn.Module):
    """Trunk features [B, C, 16, 16] -> a code (convs down to 1x1, equalized linear) -> the shared
    hypernetwork's kernel offset."""

    def __init__(self, hypernet: SharedWeightsHypernet, n_channels: int = 512, inner_c: int = 128,
                 code_dim: int = 512, spatial: int = FEATURE_SPATIAL):
        super().__init__()
        self.code_dim = code_dim
        # one stride-1 conv, then stride 2 down to 1x1
        self.convs = _conv_stack(n_channels, inner_c, code_dim, [1] + [2] * int(math.log2(spatial)))
        self.linear = FullyConnectedLayer(code_dim, code_dim)  # = rosinality EqualLinear, lr_mul 1
        self.hypernet = hypernet

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        code = self.linear(self.convs(features).reshape(-1, self.code_dim))
        return self.hypernet(code)


class RefinementBlock(nn.Module):
    """Trunk features -> the offset of one layer predicted directly by a 1x1 conv.

    A ToRGB layer (1x1 kernel) gets its whole kernel; a 3x3 layer gets one value per (out, in) pair,
    repeated over the kernel (its convs stop at 2x2, averaged to 1x1 first).
    """

    def __init__(self, shape: LayerShape, n_channels: int = 512, inner_c: int = 256, code_dim: int = 512,
                 spatial: int = FEATURE_SPATIAL):
        super().__init__()
        self.shape = shape
        n_convs = int(math.log2(spatial)) - (1 if shape.kernel_size == 3 else 0)
        self.convs = _conv_stack(n_channels, inner_c, code_dim, [2] * n_convs)
        head = nn.Conv2d(code_dim, shape.in_channels * shape.out_channels, 1, 1, 0)
        self.output = nn.Sequential(head) if shape.kernel_size == 1 else nn.Sequential(nn.AdaptiveAvgPool2d(1), head)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        out_c, in_c, k = self.shape
        x = self.output(self.convs(features))
        if k == 1:
            return x.view(-1, out_c, in_c, 1, 1)
        return x.view(-1, out_c, in_c, 1, 1).expand(-1, out_c, in_c, k, k)


class SharedWeightsHyperNetResNet(nn.Module):
    """[image, current reconstruction] (6 channels, 256 px) -> one offset per generator layer
    (None for layers not tuned), shaped like that layer's weight with a batch dimension."""

    def __init__(self, layers: Sequence[Optional[LayerShape]], input_nc: int = 6,
                 widths: Sequence[int] = DEFAULT_WIDTHS, code_dim: int = 512, shared_channels: int = 512,
                 hyper_inner: int = 128, refine_inner: int = 256):
        super().__init__()
        add_resnet_stem(self, input_nc, widths[0])
        self.body = resnet34_body(widths)
        self.shared_weight_hypernet = SharedWeightsHypernet(code_dim, shared_channels, shared_channels)
        blocks: list[Optional[nn.Module]] = []
        for index, shape in enumerate(layers):
            if shape is None:
                blocks.append(None)
            elif index in SHARED_LAYERS:
                if tuple(shape) != (shared_channels, shared_channels, 3):
                    raise ValueError(f"layer {index} is tuned through the shared hypernetwork, which predicts "
                                     f"[{shared_channels}, {shared_channels}, 3, 3] kernels, not {list(shape)}")
                blocks.append(HyperRefinementBlock(self.shared_weight_hypernet, widths[-1], hyper_inner, code_dim))
            else:
                blocks.append(RefinementBlock(LayerShape(*shape), widths[-1], refine_inner, code_dim))
        self.refinement_blocks = nn.ModuleList(blocks)

    @property
    def tuned_layers(self) -> list[int]:
        return [i for i, block in enumerate(self.refinement_blocks) if block is not None]

    def forward(self, x: torch.Tensor) -> list[Optional[torch.Tensor]]:
        features = self.body(self.relu(self.bn1(self.conv1(x))))
        return [None if block is None else block(features) for block in self.refinement_blocks]


class WEncoder(nn.Module):
    """HyperStyle's starting point (an e4e-style encoder into W): IR-SE50 body, average pool, linear;
    the single w is repeated over `n_styles` rows ([B, n_styles, style_dim], before latent_avg)."""

    def __init__(self, n_styles: int = 18, input_nc: int = 3, widths: Sequence[int] = DEFAULT_WIDTHS,
                 style_dim: int = 512):
        super().__init__()
        self.n_styles = n_styles
        self.input_layer = irse50_input_layer(input_nc, widths[0])
        self.output_pool = nn.AdaptiveAvgPool2d(1)
        self.linear = FullyConnectedLayer(widths[-1], style_dim)
        self.body = irse50_body(widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.output_pool(self.body(self.input_layer(x)))
        w = self.linear(x.reshape(x.shape[0], -1))
        return w.unsqueeze(1).repeat(1, self.n_styles, 1)
