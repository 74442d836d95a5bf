"""QuickNet (Larq Compute Engine's reference BNN, larq-zoo ``QuickNet``) in BNN-Clip form
(random weights).

The structure follows QuickNet: a stem of three convolutions (3x3 stride 2 to 16 channels with
ReLU, 3x3 stride 2, 1x1 to 64 channels: 224x224 becomes 56x56), four sections of 4 residual
blocks of 64/128/256/512 channels and a 1000-way head. A residual block is
``x + bn(relu(bconv3x3(x)))`` with +1 padding of the binary convolution; a transition
between sections (where the width doubles) is ``relu -> 2x downsampling -> 1x1 convolution ->
bn``.

The BNN-Clip form changes only what has no integer form in bnnmlir's layer set:

* every value between layers is on the int8 stream (a Clip8 after each BatchNorm and residual
  add), and the stem's convolutions are int8 convolutions (:class:`Int8Conv2d`);
* the transition's 1x1 convolution is binary, as Bi-Real-Net's downsampling shortcut (an int8
  one of 256 input channels has a value range of millions of integers per output channel,
  which makes the exact folding of its BatchNorm slow to compile);
* the stem's 3x3 depthwise convolution is a full 16-channel 3x3 int8 convolution (16 channels:
  a few million MACs more);
* the transition's anti-aliased downsampling (2x2 max pooling with stride 1, then a fixed 3x3
  blur with stride 2) is a 3x3 max pooling with stride 2 (integer);
* the head is binary (``blinear(sign(mean(x)))``, as in Bi-Real-Net-18), without QuickNet's ReLU
  before the pooling (the sign of a mean of ReLU outputs is always +1).
"""

from __future__ import annotations

import torch
from torch import nn

import bnnmlir.nn as bnn
from bnnmlir.models.imagenet_blocks import BinaryHead, finish

SECTION_BLOCKS = (4, 4, 4, 4)
SECTION_FILTERS = (64, 128, 256, 512)


class QuickNetBlock(nn.Module):
    """``clip8(x + clip8(bn(relu(bconv3x3(x)))))``, the binary convolution padded with +1."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = bnn.BinaryConv2d(channels, channels, 3, padding=1, pad_value=1.0)
        self.relu = nn.ReLU()
        self.bn = nn.BatchNorm2d(channels)
        self.clip = bnn.Clip8()
        self.out_clip = bnn.Clip8()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_clip(x + self.clip(self.bn(self.relu(self.conv(x)))))


def transition(in_channels: int, out_channels: int) -> nn.Sequential:
    """``relu -> maxpool 3x3 stride 2 -> binary conv 1x1 -> bn -> clip8``."""
    return nn.Sequential(nn.ReLU(), nn.MaxPool2d(3, stride=2, padding=1),
                         bnn.BinaryConv2d(in_channels, out_channels, 1),
                         nn.BatchNorm2d(out_channels), bnn.Clip8())


def stem(channels: int) -> nn.Sequential:
    """224x224x3 to 56x56x``channels``: int8 3x3 stride 2 (+ReLU), 3x3 stride 2, 1x1."""
    quarter = channels // 4
    return nn.Sequential(
        bnn.QuantizeInput(1.0 / 64.0),
        bnn.Int8Conv2d(3, quarter, 3, stride=2, padding=1), nn.BatchNorm2d(quarter), nn.ReLU(),
        bnn.Clip8(),
        bnn.Int8Conv2d(quarter, quarter, 3, stride=2, padding=1), nn.BatchNorm2d(quarter),
        bnn.Clip8(),
        bnn.Int8Conv2d(quarter, channels, 1), nn.BatchNorm2d(channels), bnn.Clip8(),
    )


def quicknet(classes: int = 1000, seed: int = 0) -> nn.Module:
    """QuickNet in BNN-Clip form (any input size divisible by 32; 224x224 is the reference);
    see the module docstring."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = [stem(SECTION_FILTERS[0])]
    channels = SECTION_FILTERS[0]
    for blocks, filters in zip(SECTION_BLOCKS, SECTION_FILTERS, strict=True):
        for _ in range(blocks):
            if filters != channels:
                layers.append(transition(channels, filters))
                channels = filters
            layers.append(QuickNetBlock(channels))
    layers.append(BinaryHead(channels, classes))
    return finish(nn.Sequential(*layers), seed)
