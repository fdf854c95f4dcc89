"""pSp, e4e and ReStyle encoder heads over the backbones of `encoders_backbone`.

Every class keeps the attribute names of the released networks, so the `encoder.*` part of a
checkpoint's `state_dict` loads strictly. All return W+ codes [N, n_styles, style_dim] *before*
`latent_avg` is added (the technique in `stylecore.inversion.encoders` adds it).

* `GradualStyleEncoder` (pSp): FPN over taps c1/c2/c3; styles 0-2 read c3, 3-6 read p2, 7+ read p1.
* `Encoder4Editing` (e4e): same FPN, but w0 = styles[0](c3) repeated plus per-row deltas.
* `BackboneEncoder` / `ProgressiveBackboneEncoder` (ReStyle pSp / e4e flavour): every style block
  reads the final 16x16 map; `ResNet*` versions use a ResNet-34 trunk (non-face ReStyle models).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from stylecore.networks.encoders_backbone import (DEFAULT_WIDTHS, add_resnet_stem, irse50_body, irse50_input_layer,
                                                  resnet34_body)
from stylecore.networks.layers import FullyConnectedLayer

__all__ = ["GradualStyleBlock", "GradualStyleEncoder", "Encoder4Editing", "BackboneEncoder",
           "ProgressiveBackboneEncoder", "ResNetBackboneEncoder", "ResNetProgressiveBackboneEncoder",
           "ENCODER_CLASSES", "COARSE_END", "MIDDLE_END"]

COARSE_END, MIDDLE_END = 3, 7  # FPN split of the style rows (coarse 0-2, middle 3-6, fine 7+)
IRSE50_TAPS = (6, 20, 23)  # body units after which c1, c2, c3 are taken


class GradualStyleBlock(nn.Module):
    """Stride-2 convs (LeakyReLU slope 0.01) down to 1x1, then an equalized linear layer -> one style."""

    def __init__(self, in_channels: int, out_channels: int, spatial: int):
        super().__init__()
        self.out_channels = out_channels
        layers: list[nn.Module] = []
        for i in range(int(math.log2(spatial))):
            layers += [nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, 3, 2, 1), nn.LeakyReLU()]
        self.convs = nn.Sequential(*layers)
        self.linear = FullyConnectedLayer(out_channels, out_channels)  # = rosinality EqualLinear, lr_mul 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.convs(x).reshape(-1, self.out_channels))


def _upsample_add(x: torch.Tensor, lateral: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=lateral.shape[-2:], mode="bilinear", align_corners=True) + lateral


def _progressive(w0: torch.Tensor, deltas: Sequence[torch.Tensor]) -> torch.Tensor:
    """e4e's W+: row 0 is w0, row i is w0 + delta_i."""
    return torch.stack([w0] + [w0 + d for d in deltas], dim=1)


class _FPNEncoder(nn.Module):
    """IR-SE50 body with three taps and the two lateral 1x1 convs shared by pSp and e4e."""

    def __init__(self, input_nc: int = 3, n_styles: int = 18, widths: Sequence[int] = DEFAULT_WIDTHS,
                 style_dim: int = 512):
        super().__init__()
        self.n_styles = n_styles
        self.input_layer = irse50_input_layer(input_nc, widths[0])
        self.body = irse50_body(widths)
        top = widths[-1]
        self.styles = nn.ModuleList(
            GradualStyleBlock(top, style_dim, 16 if i < COARSE_END else 32 if i < MIDDLE_END else 64)
            for i in range(n_styles))
        self.latlayer1 = nn.Conv2d(widths[2], top, 1, 1, 0)
        self.latlayer2 = nn.Conv2d(widths[1], top, 1, 1, 0)

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The map each style row reads: c3 for coarse, p2 = c3 + c2 for middle, p1 = p2 + c1 for fine."""
        x = self.input_layer(x)
        taps = {}
        for i, unit in enumerate(self.body):
            x = unit(x)
            if i in IRSE50_TAPS:
                taps[i] = x
        c1, c2, c3 = (taps[i] for i in IRSE50_TAPS)
        p2 = _upsample_add(c3, self.latlayer1(c2)) if self.n_styles > COARSE_END else None
        p1 = _upsample_add(p2, self.latlayer2(c1)) if self.n_styles > MIDDLE_END else None
        return [c3 if i < COARSE_END else p2 if i < MIDDLE_END else p1 for i in range(self.n_styles)]


class GradualStyleEncoder(_FPNEncoder):
    """pSp: one style block per W+ row."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self._features(x)
        return torch.stack([style(f) for style, f in zip(self.styles, feats)], dim=1)


class Encoder4Editing(_FPNEncoder):
    """e4e at its inference stage (every delta active)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self._features(x)
        return _progressive(self.styles[0](feats[0]), [self.styles[i](feats[i]) for i in range(1, self.n_styles)])


class _SingleMapEncoder(nn.Module):
    """ReStyle heads: n_styles blocks that all read the trunk's final 16x16 map."""

    progressive = False

    def _init_styles(self, n_styles: int, top: int, style_dim: int) -> None:
        self.n_styles = n_styles
        self.styles = nn.ModuleList(GradualStyleBlock(top, style_dim, 16) for _ in range(n_styles))

    def _trunk(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._trunk(x)
        if self.progressive:
            return _progressive(self.styles[0](x), [style(x) for style in self.styles[1:]])
        return torch.stack([style(x) for style in self.styles], dim=1)


class BackboneEncoder(_SingleMapEncoder):
    """ReStyle-pSp (faces): IR-SE50 trunk, 6-channel input (image + current reconstruction)."""

    def __init__(self, input_nc: int = 6, n_styles: int = 18, widths: Sequence[int] = DEFAULT_WIDTHS,
                 style_dim: int = 512):
        super().__init__()
        self.input_layer = irse50_input_layer(input_nc, widths[0])
        self.body = irse50_body(widths)
        self._init_styles(n_styles, widths[-1], style_dim)

    def _trunk(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.input_layer(x))


class ProgressiveBackboneEncoder(BackboneEncoder):
    """ReStyle-e4e (faces): as `BackboneEncoder`, with e4e's w0 + deltas."""

    progressive = True


class ResNetBackboneEncoder(_SingleMapEncoder):
    """ReStyle-pSp for non-face domains: ResNet-34 trunk with a PReLU stem and no max-pool."""

    def __init__(self, input_nc: int = 6, n_styles: int = 18, widths: Sequence[int] = DEFAULT_WIDTHS,
                 style_dim: int = 512):
        super().__init__()
        add_resnet_stem(self, input_nc, widths[0])
        self.body = resnet34_body(widths)
        self._init_styles(n_styles, widths[-1], style_dim)

    def _trunk(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.relu(self.bn1(self.conv1(x))))


class ResNetProgressiveBackboneEncoder(ResNetBackboneEncoder):
    """ReStyle-e4e for non-face domains."""

    progressive = True


ENCODER_CLASSES: dict[str, type[nn.Module]] = {
    "GradualStyleEncoder": GradualStyleEncoder,
    "Encoder4Editing": Encoder4Editing,
    "BackboneEncoder": BackboneEncoder,
    "ProgressiveBackboneEncoder": ProgressiveBackboneEncoder,
    "ResNetBackboneEncoder": ResNetBackboneEncoder,
    "ResNetProgressiveBackboneEncoder": ResNetProgressiveBackboneEncoder,
}
