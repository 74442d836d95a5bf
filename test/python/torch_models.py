"""Small PyTorch models and BatchNorm randomization shared by the tests."""

from __future__ import annotations

import torch
from torch import nn

import bnnmlir.nn as bnn


def randomize_bn(bn: nn.BatchNorm2d | nn.BatchNorm1d, seed: int, spread: float = 3.0) -> None:
    """Random running statistics and affine parameters (gamma of either sign)."""
    g = torch.Generator().manual_seed(seed)
    c = bn.num_features
    with torch.no_grad():
        bn.running_mean.copy_((torch.rand(c, generator=g) * 2 - 1) * spread)
        bn.running_var.copy_(torch.rand(c, generator=g) + 0.5)
        bn.weight.copy_(torch.randn(c, generator=g))
        bn.bias.copy_(torch.randn(c, generator=g))


def binary_net(seed: int = 0) -> nn.Module:
    """Binary conv, BatchNorm (one constant channel), Clip8, strided binary conv padded with -1."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        bnn.BinaryConv2d(3, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        bnn.Clip8(),
        bnn.BinaryConv2d(16, 12, 3, stride=2, padding=1, pad_value=-1.0),
    )
    bn = model[1]
    bn.running_mean.uniform_(-4, 4)
    bn.running_var.uniform_(0.5, 3)
    bn.weight.data.uniform_(-2, 2)
    bn.weight.data[0] = 0.0
    bn.bias.data.uniform_(-2, 2)
    return model.eval()
