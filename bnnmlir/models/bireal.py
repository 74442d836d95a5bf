"""Bi-Real-Net-18 in BNN-Clip form (224x224, random weights).

The shape of Bi-Real-Net-18 (Liu et al., ECCV 2018): a 7x7 stride-2 stem, 3x3 max pooling, four
stages of 64/128/256/512 channels with a shortcut around every 3x3 binary convolution (16 of
them; the first of stages 2-4 has stride 2 and a 1x1 binary shortcut), global average pooling
and a 1000-way head. In BNN-Clip form the stem is an int8 convolution, every value between layers
is int8 and the head is binary, so the compiled network equals PyTorch bit for bit.
"""

from __future__ import annotations

import torch
from torch import nn

from bnnmlir.models.imagenet_blocks import BinaryHead, ClipBlock, finish, int8_stem


def bireal_net18(classes: int = 1000, seed: int = 0) -> nn.Module:
    """Bi-Real-Net-18's shape (224x224 input) in BNN-Clip form; see the module docstring."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = [int8_stem(64, 7, 2), nn.MaxPool2d(3, stride=2, padding=1)]
    channels = 64
    for stage, width in enumerate((64, 128, 256, 512)):
        for conv in range(4):
            stride = 2 if stage > 0 and conv == 0 else 1
            layers.append(ClipBlock(channels, width, stride))
            channels = width
    layers.append(BinaryHead(channels, classes))
    return finish(nn.Sequential(*layers), seed)
