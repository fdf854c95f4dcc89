"""Backbones of the pSp / e4e / ReStyle encoders: IR-SE50 (InsightFace port) and ResNet-34.

Module and attribute names follow the released checkpoints (`input_layer.*`, `body.{i}.res_layer.*`,
`body.{i}.shortcut_layer.*`; ResNet: `conv1`, `bn1`, `relu`, `body.{i}.conv1` ...) so their
`encoder.*` tensors load strictly. Widths are parameters only so tests can build small copies;
the released files use the defaults.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

IRSE50_UNITS = (3, 4, 14, 3)
RESNET34_UNITS = (3, 4, 6, 3)
DEFAULT_WIDTHS = (64, 128, 256, 512)
SE_REDUCTION = 16


class SEModule(nn.Module):
    """Squeeze-and-excitation gate (1x1 convs without bias), as in the IR-SE units."""

    def __init__(self, channels: int, reduction: int = SE_REDUCTION):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, padding=0, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, padding=0, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))
        return x * gate


class BottleneckIRSE(nn.Module):
    """Pre-BN residual unit with PReLU and SE; no activation after the sum."""

    def __init__(self, in_channels: int, depth: int, stride: int):
        super().__init__()
        # Registered before res_layer: the checkpoints list shortcut_layer.* first.
        if in_channels == depth:
            self.shortcut_layer: nn.Module = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(in_channels, depth, 1, stride, bias=False),
                                                nn.BatchNorm2d(depth))
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, depth, 3, 1, 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
            nn.BatchNorm2d(depth),
            SEModule(depth),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock, with its attribute names (ReStyle flattens layer1..4 into body)."""

    def __init__(self, in_channels: int, depth: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, depth, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(depth)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(depth, depth, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(depth)
        self.downsample = None
        if stride != 1 or in_channels != depth:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, depth, 1, stride, bias=False),
                                            nn.BatchNorm2d(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


def _stages(widths: Sequence[int], units: Sequence[int], first_in: int, first_stride: int
            ) -> list[tuple[int, int, int]]:
    """(in, out, stride) per unit: the first unit of a stage changes width / stride, the rest keep it."""
    out, in_ch = [], first_in
    for s, (depth, n) in enumerate(zip(widths, units)):
        stride = first_stride if s == 0 else 2
        out.append((in_ch, depth, stride))
        out.extend((depth, depth, 1) for _ in range(n - 1))
        in_ch = depth
    return out


def irse50_input_layer(input_nc: int, width: int = DEFAULT_WIDTHS[0]) -> nn.Sequential:
    """3x3 stride-1 stem (conv, BN, PReLU): a 256 input stays 256x256."""
    return nn.Sequential(nn.Conv2d(input_nc, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.PReLU(width))


def irse50_body(widths: Sequence[int] = DEFAULT_WIDTHS) -> nn.Sequential:
    """The 24 IR-SE units; every stage, the first included, halves the resolution."""
    return nn.Sequential(*[BottleneckIRSE(i, o, s) for i, o, s in _stages(widths, IRSE50_UNITS, widths[0], 2)])


def resnet34_body(widths: Sequence[int] = DEFAULT_WIDTHS) -> nn.Sequential:
    """ResNet-34 layer1..layer4 as one flat Sequential (layer1 keeps the stem's resolution)."""
    return nn.Sequential(*[BasicBlock(i, o, s) for i, o, s in _stages(widths, RESNET34_UNITS, widths[0], 1)])


def add_resnet_stem(module: nn.Module, input_nc: int, width: int = DEFAULT_WIDTHS[0]) -> None:
    """7x7 stride-2 conv, BN and PReLU (not ReLU), no max-pool, under the names ReStyle saves."""
    module.conv1 = nn.Conv2d(input_nc, width, 7, 2, 3, bias=False)
    module.bn1 = nn.BatchNorm2d(width)
    module.relu = nn.PReLU(width)
