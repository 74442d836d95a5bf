"""Building blocks of the 224x224 BNN-Clip networks of the model zoo (random weights).

In BNN-Clip form every value between layers is on the int8 stream (a :class:`~bnnmlir.nn.Clip8`
after every BatchNorm and residual add), so a compiled network equals PyTorch bit for bit.
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
    integer arithmetic on the int8 stream. ``pad_value`` is that of the 3x3 convolution.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1,
                 pad_value: float = 0.0):
        super().__init__()
        self.conv = bnn.BinaryConv2d(in_channels, out_channels, 3, stride=stride, padding=1,
                                     pad_value=pad_value)
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


def int8_stem(channels: int, kernel: int, stride: int, padding: int | None = None,
              in_channels: int = 3) -> nn.Sequential:
    """``QuantizeInput(1/64) -> Int8Conv2d -> BatchNorm -> Clip8``: a float image onto the int8
    stream (``padding`` defaults to ``kernel // 2``)."""
    conv = bnn.Int8Conv2d(in_channels, channels, kernel, stride=stride,
                          padding=kernel // 2 if padding is None else padding)
    return nn.Sequential(bnn.QuantizeInput(1.0 / 64.0), conv, nn.BatchNorm2d(channels), bnn.Clip8())


def finish(model: nn.Module, seed: int) -> nn.Module:
    """Random BatchNorm statistics from ``seed``, eval mode."""
    return randomize_batchnorm(model, torch.Generator().manual_seed(seed)).eval()
