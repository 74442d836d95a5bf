"""Renditions of published BNN idioms (the math of Bi-Real-Net, ReActNet, XNOR-Net, written
afresh): detach straight-through estimators, scaled binary weights, learnable biases, RPReLU.
Bi-Real-Net-18 in its authors' form lives in :mod:`bnnmlir.examples.published` (the benchmark
times it)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from bnnmlir.examples.published import (  # noqa: F401  (re-exported for the tests)
    BiRealBlock,
    BiRealNet18,
    QuadraticSTE,
    ScaledBinaryConv,
    randomize_batch_norms,
)


class TanhSTE(nn.Module):
    def forward(self, x):
        soft = torch.tanh(3 * x)
        return torch.sign(x).detach() - soft.detach() + soft


class ClampSTE(nn.Module):
    def forward(self, x):
        soft = torch.clamp(x, -1, 1)
        return (torch.sign(x) - soft).detach() + soft


class PolySTE(nn.Module):
    """A polynomial soft function: bounded only on a restricted domain of x."""

    def __init__(self, degree=3):
        super().__init__()
        self.degree = degree

    def forward(self, x):
        soft = x**self.degree + x
        return torch.sign(x).detach() - soft.detach() + soft


class LearnableBias(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.bias = nn.Parameter(torch.randn(1, c, 1, 1) * 0.1)

    def forward(self, x):
        return x + self.bias


class RPReLU(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.shift_in, self.shift_out = LearnableBias(c), LearnableBias(c)
        self.prelu = nn.PReLU(c)
        with torch.no_grad():
            self.prelu.weight.uniform_(0.05, 0.5)

    def forward(self, x):
        return self.shift_out(self.prelu(self.shift_in(x)))


# ---- ReActNet-A style -----------------------------------------------------------------------


class RSign(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.shift = LearnableBias(c)
        self.act = QuadraticSTE()

    def forward(self, x):
        return self.act(self.shift(x))


class ReActBlock(nn.Module):
    """3x3 binary conv (+ avg-pooled shortcut when strided), RPReLU; 1x1 binary conv(s) with a
    concatenated pair when the channels double."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.sign3, self.conv3 = RSign(cin), ScaledBinaryConv(cin, cin, 3, stride, 1)
        self.bn3, self.act3 = nn.BatchNorm2d(cin), RPReLU(cin)
        self.pool = nn.AvgPool2d(2, 2) if stride == 2 else None
        self.sign1 = RSign(cin)
        self.double = cout == 2 * cin
        self.conv1a = ScaledBinaryConv(cin, cin, 1, 1, 0)
        self.bn1a = nn.BatchNorm2d(cin)
        if self.double:
            self.conv1b, self.bn1b = ScaledBinaryConv(cin, cin, 1, 1, 0), nn.BatchNorm2d(cin)
        self.act1 = RPReLU(cout)

    def forward(self, x):
        short = x if self.pool is None else self.pool(x)
        x = self.act3(self.bn3(self.conv3(self.sign3(x))) + short)
        b = self.sign1(x)
        out = self.bn1a(self.conv1a(b)) + x
        if self.double:
            out = torch.cat([out, self.bn1b(self.conv1b(b)) + x], dim=1)
        return self.act1(out)


class ReActNetA(nn.Module):
    def __init__(self, widths=(8, 16, 16, 32), classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 2, 1, bias=False),
                                  nn.BatchNorm2d(widths[0]))
        blocks = []
        for cin, cout in zip(widths, widths[1:]):
            blocks.append(ReActBlock(cin, cout, 2 if cout == 2 * cin else 1))
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[-1], classes)

    def forward(self, x):
        x = self.pool(self.blocks(self.stem(x)))
        return self.fc(torch.flatten(x, 1))


# ---- XNOR-Net style ------------------------------------------------------------------------


class _SignFunction(torch.autograd.Function):
    """XNOR-Net's binarization: sign forward, gradient passed where |x| <= 1."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.sign()

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


class BinActive(nn.Module):
    def forward(self, x):
        return _SignFunction.apply(x)


class XnorBlock(nn.Module):
    """BatchNorm, sign, mean |W| scaled binary convolution, times the activation scale
    ``K = mean_c(|a|) (*) (1 / (k*k))`` computed at run time, ReLU."""

    def __init__(self, cin, cout, k=3, stride=1, padding=1):
        super().__init__()
        self.bn = nn.BatchNorm2d(cin)
        self.act = BinActive()
        self.conv = ScaledBinaryConv(cin, cout, k, stride, padding, detach_trick=False)
        self.register_buffer("box", torch.full((1, 1, k, k), 1.0 / (k * k)))
        self.stride, self.padding = stride, padding

    def forward(self, x):
        a = self.bn(x)
        scale = F.conv2d(a.abs().mean(dim=1, keepdim=True), self.box, stride=self.stride,
                         padding=self.padding)
        return torch.relu(self.conv(self.act(a)) * scale)


class XnorNet(nn.Module):
    def __init__(self, widths=(8, 12, 16), classes=10):
        super().__init__()
        self.stem = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.blocks = nn.Sequential(XnorBlock(widths[0], widths[1]),
                                    XnorBlock(widths[1], widths[2], stride=2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[-1], classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))
