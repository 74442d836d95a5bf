"""Bi-Real-Net-18 as its authors wrote it in PyTorch (the same math, written afresh): detach
straight-through estimators with Bi-Real's piecewise quadratic, mean |W| scaled binary weights from
a flat parameter with the clamp-detach trick, a float ``+=`` residual stream and the
``AvgPool2d + 1x1 Conv2d + BatchNorm`` downsample. ``bnnmlir.compile(..., exact=False)`` compiles
it as it is and ``bnnmlir.convert`` rewrites it into :mod:`bnnmlir.nn` layers; ``bnnmlir bench
--published`` times it against :func:`bnnmlir.examples.models.bireal_net18` (BNN-Clip)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class QuadraticSTE(nn.Module):
    """Bi-Real's activation: sign forward, piecewise quadratic backward (masks x < -1, 0, 1)."""

    def forward(self, x):
        hard = torch.sign(x)
        below, neg, under = (x < -1).float(), (x < 0).type(torch.float32), (x < 1).float()
        q = -1 * below + (x * x + 2 * x) * (1 - below)
        q = q * neg + (-x * x + 2 * x) * (1 - neg)
        q = q * under + 1 * (1 - under)
        return hard.detach() - q.detach() + q


class ScaledBinaryConv(nn.Module):
    """Flat weight parameter, per-output-channel mean |W| scale, clamp-detach trick."""

    def __init__(self, cin, cout, k=3, stride=1, padding=1, detach_trick=True):
        super().__init__()
        self.shape = (cout, cin, k, k)
        self.weight = nn.Parameter(torch.randn(cout * cin * k * k, 1) * 0.01)
        self.stride, self.padding, self.detach_trick = stride, padding, detach_trick

    def forward(self, x):
        w = self.weight.view(self.shape)
        alpha = w.abs().mean(dim=3, keepdim=True).mean(dim=2, keepdim=True)
        alpha = alpha.mean(dim=1, keepdim=True).detach()
        bw = alpha * torch.sign(w)
        if self.detach_trick:
            cw = torch.clamp(w, -1.0, 1.0)
            bw = bw.detach() - cw.detach() + cw
        return F.conv2d(x, bw, stride=self.stride, padding=self.padding)


def randomize_batch_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(c, generator=g) * 0.1)
    return model.eval()


class BiRealBlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.act = QuadraticSTE()
        self.conv = ScaledBinaryConv(cin, cout, stride=stride)
        self.bn = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.AvgPool2d(2, stride), nn.Conv2d(cin, cout, 1,
                                            bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = self.bn(self.conv(self.act(x)))
        out += residual
        return out


class BiRealNet18(nn.Module):
    def __init__(self, width=64, classes=1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        blocks, cin = [], width
        for stage in range(4):
            cout = width * 2**stage
            for i in range(4):
                blocks.append(BiRealBlock(cin, cout, 2 if (i == 0 and stage > 0) else 1))
                cin = cout
        self.layers = nn.Sequential(*blocks)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.maxpool(self.bn1(self.conv1(x)))
        x = self.avgpool(self.layers(x))
        return self.fc(torch.flatten(x, 1))
