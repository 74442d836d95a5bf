"""The exactness contract of ``bnnmlir.compile``, over randomized models.

Binary layers, Clip8, folded BatchNorm, integer pooling and residual adds on the int8 stream are
EQUAL (``torch.equal``) to ``model.eval()``; float heads match within rtol 1e-5 / atol 1e-4.
Randomized shapes on the host; a few models as aarch64 objects under qemu-aarch64.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from conftest import requires_aarch64
from hypothesis import given, settings
from hypothesis import strategies as st

import bnnmlir
import bnnmlir.nn as bnn
from bnnmlir.examples.models import ClipBlock, bireal_net18, bnn_clip_net, randomize_batchnorm


@st.composite
def clip_networks(draw):
    """A random BNN-Clip network and an input batch."""
    seed = draw(st.integers(0, 2**16))
    torch.manual_seed(seed)
    cin = draw(st.integers(1, 9))
    width = draw(st.integers(1, 40))
    size = draw(st.integers(3, 11))
    batch = draw(st.integers(1, 2))
    pad_value = draw(st.sampled_from([0.0, 1.0, -1.0]))
    k = draw(st.sampled_from([1, 3]))
    in_size = size
    size = size + 2 - k + 1  # padding 1 on each side
    layers: list[nn.Module] = [
        bnn.QuantizeInput(1.0 / 32.0),
        bnn.BinaryConv2d(cin, width, k, padding=1, pad_value=pad_value),
        nn.BatchNorm2d(width),
        bnn.Clip8(),
    ]
    channels = width
    for _ in range(draw(st.integers(0, 2))):
        out = draw(st.integers(1, 40))
        stride = draw(st.sampled_from([1, 2])) if size >= 4 else 1
        layers.append(ClipBlock(channels, out, stride))
        size = (size - 1) // stride + 1
        channels = out
    tail = draw(st.sampled_from(["sign", "pool-binary-head", "maxpool", "int"]))
    if tail == "sign":  # BatchNorm + sign as the output: a folded threshold, +-1 values
        layers += [bnn.BinaryConv2d(channels, 5, 3, padding=1), nn.BatchNorm2d(5)]
        layers.append(_Sign())
    elif tail == "pool-binary-head":
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), bnn.BinaryLinear(channels, 7)]
    elif tail == "maxpool":
        layers += [nn.MaxPool2d(2, ceil_mode=False)] if size >= 2 else []
    model = randomize_batchnorm(nn.Sequential(*layers), torch.Generator().manual_seed(seed)).eval()
    x = torch.randn(batch, cin, in_size, in_size, generator=torch.Generator().manual_seed(seed))
    return model, x


class _Sign(nn.Module):
    def forward(self, x):
        return bnn.binarize(x)


@settings(max_examples=8, deadline=None)
@given(case=clip_networks())
def test_random_clip_networks_are_identical_on_the_host(case):
    model, x = case
    compiled = bnnmlir.compile(model, (x,), threads=1)
    for seed in range(2):
        xs = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed)) * 3
        assert torch.equal(compiled(xs), model(xs))


class STESign(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.where(x >= 0, 1.0, -1.0)

    @staticmethod
    def backward(ctx, g):
        return g


class PlainBNN(nn.Module):
    """No bnnmlir.nn: a custom STE and torch.where, weights binarized the same way."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(8, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 12, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(12)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(12, 4)

    def forward(self, x):
        x = nn.functional.conv2d(STESign.apply(x), STESign.apply(self.conv1.weight), padding=1)
        x = self.bn1(x)
        x = nn.functional.conv2d(torch.where(x >= 0, 1.0, -1.0),
                                 torch.where(self.conv2.weight >= 0, 1.0, -1.0), stride=2, padding=1)
        x = torch.relu(self.bn2(x))
        return self.fc(torch.flatten(self.pool(x), 1))


def test_plain_pytorch_bnn_with_float_head():
    torch.manual_seed(3)
    model = randomize_batchnorm(PlainBNN()).eval()
    x = torch.randn(2, 8, 9, 9)
    compiled = bnnmlir.compile(model, (x,), threads=2)
    # The convolutions are functional calls in the root module's forward: they belong to "<root>".
    ops = [op.split("+")[0] for row in compiled.report().rows for op in row.ops]
    assert ops.count("bconv2d") == 2 and "conv2d" not in ops, ops
    assert not compiled.warnings
    for seed in range(3):
        xs = torch.randn(2, 8, 9, 9, generator=torch.Generator().manual_seed(seed))
        torch.testing.assert_close(compiled(xs), model(xs), rtol=1e-5, atol=1e-4)


def test_example_network_is_identical():
    model = bnn_clip_net()
    x = torch.randn(2, 3, 32, 32)
    compiled = bnnmlir.compile(model, (x,))
    assert torch.equal(compiled(x), model(x))


@requires_aarch64
@pytest.mark.parametrize("seed", [0, 1])
def test_example_network_under_qemu_is_identical(seed):
    model = bnn_clip_net(width=16, seed=seed)
    x = torch.randn(1 + seed, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    compiled = bnnmlir.compile(model, (x,), target="aarch64", threads=2)
    assert torch.equal(compiled(x), model(x))


def test_bireal_net18_at_224_is_identical():
    model = bireal_net18()
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    compiled = bnnmlir.compile(model, (x,))
    binary = [r for r in compiled.report().rows if r.kind == "binary"]
    assert len(binary) >= 16
    assert torch.equal(compiled(x), model(x))
