"""Binary layers with a bias (``BinaryConv2d(bias=True)``, ``BinaryLinear(bias=True)``).

PyTorch adds the bias inside its float32 sum (order set by the CPU kernel); the compiled layer
adds it once to the exact integer sum. :mod:`bnnmlir.frontend.bias` proves when both agree bit
for bit and warns otherwise. Compiled (or reference-evaluated) results are compared with
``torch.equal`` against ``model.eval()``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch_models import randomize_bn

import bnnmlir
from bnnmlir.frontend import import_model
from bnnmlir.frontend.bias import error_bound, exact_channels
from bnnmlir.nn import BinaryConv2d, BinaryLinear, Clip8, binarize
from bnnmlir.reference import evaluate


class Sign(nn.Module):
    def forward(self, x):
        return binarize(x)


def set_bias(layer, kind: str, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    o = layer.bias.numel()
    sign = torch.where(torch.rand(o, generator=g) < 0.5, -1.0, 1.0)
    values = {
        "uniform": (torch.rand(o, generator=g) * 2 - 1) * 5,
        "half": torch.randint(-40, 40, (o,), generator=g) * 0.5 + 0.5 * sign,
        "tiny": torch.randint(1, 64, (o,), generator=g) * 2.0**-14 * sign,
        "tiny_general": torch.rand(o, generator=g) * 1e-6 * sign,
        "integer": torch.randint(-9, 9, (o,), generator=g).float(),
    }[kind]
    with torch.no_grad():
        layer.bias.copy_(values)


def want(model, x):
    model.eval()
    with torch.no_grad():
        return model(x)


def compile_and_check(model, x):
    compiled = bnnmlir.compile(model, (x,), threads=1)
    got, ref = compiled(x), want(model, x)
    assert got.dtype == ref.dtype and torch.equal(got, ref)
    return compiled


# ---------------------------------------------------------------------------------------------
# The exact-bias condition and the error bound
# ---------------------------------------------------------------------------------------------


def test_exact_channels():
    b = np.array([0.0, 0.5, -3.25, 2.0**-10, 2.0**-10, 0.1, 1e-6, 2.0**24, np.inf],
                 dtype=np.float32)
    got = exact_channels(b, 2**13)
    assert got.tolist() == [True, True, True, True, True, False, False, False, False]
    # 2**-10 + s needs 10 fraction bits: |s| < 2**14 - 2**-10
    assert not exact_channels(np.float32([2.0**-10]), 2**14)[0]
    assert exact_channels(np.float32([2.0**24 - 5]), 5)[0]
    assert not exact_channels(np.float32([2.0**24 - 5]), 6)[0]


def test_exact_channels_means_every_sum_is_a_float32():
    rng = np.random.default_rng(0)
    for k in (1, 9, 100, 4608):
        for b in np.concatenate([rng.integers(-64, 64, 20) * 2.0 ** -rng.integers(0, 20, 20),
                                 rng.uniform(-3, 3, 5)]).astype(np.float32):
            s = np.arange(-k, k + 1, dtype=np.float64)
            sums = s + np.float64(b)  # exact: at most 24 + log2(k) + 20 bits
            representable = np.all(sums.astype(np.float32).astype(np.float64) == sums)
            assert exact_channels(np.float32([b]), k)[0] == representable, (k, b)


@pytest.mark.parametrize("kind", ["conv", "conv_cl", "linear", "addmm"])
def test_pytorch_result_is_within_the_error_bound(kind):
    """The premise of the proof: PyTorch's biased result lies within ``E`` of ``S + b``."""
    gen = torch.Generator().manual_seed(1)

    def pm1(*shape):
        return torch.where(torch.rand(*shape, generator=gen) < 0.5, -1.0, 1.0)

    for c, o in ((1, 7), (16, 33), (64, 8), (300, 5)):
        b = (torch.rand(o, generator=gen) - 0.5) * 10.0 ** torch.randint(-6, 4, (o,),
                                                                         generator=gen)
        if kind.startswith("conv"):
            x, w = pm1(3, c, 7, 7), pm1(o, c, 3, 3)
            if kind == "conv_cl":
                x = x.contiguous(memory_format=torch.channels_last)
            out, s, k, shape = F.conv2d(x, w, b), F.conv2d(x, w), 9 * c, (1, o, 1, 1)
        else:
            c *= 20
            x, w = pm1(64, c), pm1(o, c)
            out = F.linear(x, w, b) if kind == "linear" else torch.addmm(b, x, w.t())
            s, k, shape = F.linear(x, w), c, (1, o)
        exact = s.double() + b.double().reshape(shape)
        bound = torch.from_numpy(error_bound(b.numpy(), k)).reshape(shape)
        assert bool(((out.double() - exact).abs() <= bound).all())


# ---------------------------------------------------------------------------------------------
# Bit-exact compiled models
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["uniform", "half", "tiny", "tiny_general", "integer"])
def test_binary_conv_bias_clip8(kind):
    torch.manual_seed(1)
    model = nn.Sequential(BinaryConv2d(8, 16, 3, padding=1, bias=True), Clip8(), nn.MaxPool2d(2),
                          BinaryConv2d(16, 5, 3, padding=1, pad_value=-1.0, bias=True), Clip8())
    set_bias(model[0], kind, 2)
    set_bias(model[3], kind, 3)
    x = torch.randn(3, 8, 8, 8)
    compiled = compile_and_check(model, x)
    assert compiled.warnings == []


@pytest.mark.parametrize("kind", ["uniform", "half", "tiny_general"])
def test_binary_conv_bias_batch_norm_sign(kind):
    torch.manual_seed(2)
    model = nn.Sequential(BinaryConv2d(6, 12, 3, padding=1, bias=True), nn.BatchNorm2d(12),
                          Sign(), BinaryConv2d(12, 7, 3, bias=True), nn.BatchNorm2d(7), Clip8())
    set_bias(model[0], kind, 4)
    set_bias(model[3], kind, 5)
    randomize_bn(model[1], 6)
    randomize_bn(model[4], 7)
    x = torch.randn(2, 6, 7, 7)
    compiled = compile_and_check(model, x)
    assert compiled.warnings == []
    assert "threshold" in compiled.mlir("optimized")  # BatchNorm + sign folded


def test_binary_linear_bias_heads():
    """A biased BinaryLinear followed by BatchNorm1d + sign, then a final biased float head."""
    torch.manual_seed(3)
    model = nn.Sequential(nn.Flatten(), BinaryLinear(4 * 5 * 5, 32, bias=True),
                          nn.BatchNorm1d(32), Sign(), BinaryLinear(32, 10, bias=True))
    set_bias(model[1], "uniform", 8)
    set_bias(model[4], "half", 9)
    randomize_bn(model[2], 10)
    x = torch.randn(5, 4, 5, 5)
    compiled = compile_and_check(model, x)
    assert compiled.warnings == []


@pytest.mark.parametrize("kind", ["half", "tiny", "integer"])
def test_binary_linear_output_with_exact_bias(kind):
    torch.manual_seed(4)
    model = nn.Sequential(nn.Flatten(), BinaryLinear(3 * 16, 10, bias=True))
    set_bias(model[1], kind, 11)
    compiled = compile_and_check(model, torch.randn(4, 3, 4, 4))
    assert compiled.warnings == []


def test_float_output_of_a_general_bias_warns():
    """The float result itself depends on PyTorch's summation order: warned, close."""
    torch.manual_seed(5)
    model = nn.Sequential(nn.Flatten(), BinaryLinear(1000, 65, bias=True))
    set_bias(model[1], "uniform", 12)
    x = torch.randn(64, 10, 10, 10)
    compiled = bnnmlir.compile(model, (x,), threads=1)
    (warning,) = compiled.warnings
    assert warning.startswith("1 (aten.linear.default") and "bias" in warning
    assert "summation order" in warning and "not always bit-identical" in warning
    bound = torch.from_numpy(error_bound(model[1].bias.detach().numpy(), 1000)).float()
    assert bool(((compiled(x) - want(model, x)).abs() <= bound).all())


def test_bias_near_a_rounding_tie_warns():
    """``b = 0.5 + 2**-20``: not exact for K = 72, and ``S + b`` lies within ``E`` of the Clip8 tie
    ``S + 0.5``, where PyTorch's rounded sum may land: the proof must fail."""
    model = nn.Sequential(BinaryConv2d(8, 3, 3, bias=True), Clip8())
    with torch.no_grad():
        model[0].bias.fill_(0.5 + 2.0**-20)
    imported = import_model(model, (torch.randn(1, 8, 5, 5),))
    (warning,) = imported.warnings
    assert warning.startswith("0 (aten.conv2d.default") and "round differently" in warning
    with torch.no_grad():
        model[0].bias.fill_(0.5 + 2.0**-4)  # exact: no warning
    assert import_model(model, (torch.randn(1, 8, 5, 5),)).warnings == []


def test_nonmonotone_consumer_is_not_proven():
    torch.manual_seed(6)
    model = nn.Sequential(BinaryConv2d(3, 4, 3, bias=True), nn.PReLU(4), Clip8())
    set_bias(model[0], "uniform", 13)
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([0.5, -0.25, 1.0, 2.0]))
    imported = import_model(model, (torch.randn(1, 3, 5, 5),))
    (warning,) = imported.warnings
    assert "PReLU with a negative slope" in warning


# ---------------------------------------------------------------------------------------------
# Many shapes against the reference evaluator
# ---------------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    cin=st.integers(1, 40),
    cout=st.integers(1, 9),
    k=st.sampled_from([1, 3]),
    pad=st.integers(0, 1),
    kind=st.sampled_from(["uniform", "half", "tiny", "tiny_general", "integer"]),
    tail=st.sampled_from(["clip8", "bn_clip8", "bn_sign"]),
    seed=st.integers(0, 2**16),
)
def test_biased_binary_conv_is_exact_or_warned(cin, cout, k, pad, kind, tail, seed):
    torch.manual_seed(seed)
    layers = [BinaryConv2d(cin, cout, k, padding=pad, bias=True)]
    if tail != "clip8":
        layers.append(nn.BatchNorm2d(cout))
        randomize_bn(layers[-1], seed)
    layers += [Sign(), BinaryConv2d(cout, 3, 1)] if tail == "bn_sign" else [Clip8()]
    model = nn.Sequential(*layers)
    set_bias(model[0], kind, seed + 1)
    x = torch.randn(2, cin, 5, 5)
    imported = import_model(model, (x,))
    (got,) = evaluate(imported.module, [x.numpy()])
    if not imported.warnings:
        assert torch.equal(torch.from_numpy(got), want(model, x))
    else:  # only a rounding boundary within E of some S + b can be left unproven
        assert kind in ("uniform", "tiny_general") and "round differently" in imported.warnings[0]
