"""Example BNN-Clip networks built from :mod:`bnnmlir.nn` (random weights; no training here).

* :func:`bnn_clip_net`: a small network for the demo: int8 input, residual binary blocks whose
  outputs stay on the int8 stream, a binary dense head.
* :func:`bireal_net18`: the shape of Bi-Real-Net-18 (224x224 input, a 7x7 stride-2 stem, max
  pooling, four stages of 64/128/256/512 channels with a shortcut around every 3x3 binary
  convolution, global average pooling, a 1000-way head), in its BNN-Clip form: every value between
  layers is int8 and the head is binary, so the compiled network equals PyTorch bit for bit.

:func:`randomize_batchnorm` gives BatchNorm layers random statistics (negative and zero gamma
included) so that folding is exercised on every channel kind.
"""

from __future__ import annotations

import torch
from torch import nn

import bnnmlir.nn as bnn


def randomize_batchnorm(model: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """Random running statistics and affine parameters for every BatchNorm of ``model``."""
    g = generator or torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            c = m.num_features
            spread = float(getattr(m, "_bnnmlir_spread", 8.0))
            m.running_mean.copy_((torch.rand(c, generator=g) - 0.5) * spread)
            m.running_var.copy_(torch.rand(c, generator=g) * spread + 0.25)
            gamma = (torch.rand(c, generator=g) - 0.3) * 2.0
            gamma[torch.rand(c, generator=g) < 0.05] = 0.0
            m.weight.data.copy_(gamma)
            m.bias.data.copy_((torch.rand(c, generator=g) - 0.5) * 4.0)
    return model


class ClipBlock(nn.Module):
    """``clip8(x + clip8(bn(bconv3x3(x))))``: a binary convolution with its own shortcut.

    When the shape changes, the shortcut is ``clip8(bn(bconv1x1_stride(x)))``, so the whole block is
    integer arithmetic on the int8 stream.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv = bnn.BinaryConv2d(in_channels, out_channels, 3, stride=stride, padding=1)
        self.bn = nn.BatchNorm2d(out_channels)
        self.clip = bnn.Clip8()
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                bnn.BinaryConv2d(in_channels, out_channels, 1, stride=stride),
                nn.BatchNorm2d(out_channels),
                bnn.Clip8(),
            )
        self.out_clip = bnn.Clip8()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.shortcut is None else self.shortcut(x)
        return self.out_clip(self.clip(self.bn(self.conv(x))) + shortcut)


class BinaryHead(nn.Module):
    """Global average pooling, then a binary dense layer: ``blinear(sign(mean_hw(x)))``."""

    def __init__(self, channels: int, classes: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = bnn.BinaryLinear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.pool(x)))


def _stem(channels: int, kernel: int, stride: int) -> nn.Sequential:
    if hasattr(bnn, "Int8Conv2d"):
        conv: nn.Module = bnn.Int8Conv2d(3, channels, kernel, stride=stride, padding=kernel // 2)
    else:  # pragma: no cover - older layer sets: a binary stem on the int8 image
        conv = bnn.BinaryConv2d(3, channels, kernel, stride=stride, padding=kernel // 2)
    return nn.Sequential(bnn.QuantizeInput(1.0 / 64.0), conv, nn.BatchNorm2d(channels), bnn.Clip8())


def bnn_clip_net(classes: int = 10, width: int = 32, seed: int = 0) -> nn.Module:
    """A small BNN-Clip network for 32x32 RGB images (CIFAR-10 shaped)."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        _stem(width, 3, 1),
        ClipBlock(width, width),
        ClipBlock(width, 2 * width, stride=2),
        ClipBlock(2 * width, 2 * width),
        ClipBlock(2 * width, 4 * width - 3, stride=2),  # an odd channel count on purpose
        BinaryHead(4 * width - 3, classes),
    )
    return randomize_batchnorm(model, torch.Generator().manual_seed(seed)).eval()


def bireal_net18(classes: int = 1000, seed: int = 0) -> nn.Module:
    """Bi-Real-Net-18's shape (224x224 input) in BNN-Clip form; see the module docstring."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = [_stem(64, 7, 2), nn.MaxPool2d(3, stride=2, padding=1)]
    channels = 64
    for stage, width in enumerate((64, 128, 256, 512)):
        for conv in range(4):
            stride = 2 if stage > 0 and conv == 0 else 1
            layers.append(ClipBlock(channels, width, stride))
            channels = width
    layers.append(BinaryHead(channels, classes))
    model = nn.Sequential(*layers)
    return randomize_batchnorm(model, torch.Generator().manual_seed(seed)).eval()
