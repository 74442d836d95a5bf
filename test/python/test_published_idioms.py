"""Published BNN idioms compiled as they are: bounds, exact=True warnings, exact=False kernels."""

from __future__ import annotations

import math

import hypothesis.strategies as st
import pytest
import torch
import torch.nn as nn
from conftest import requires_aarch64
from hypothesis import given, settings
from published_models import (
    BiRealNet18,
    ClampSTE,
    LearnableBias,
    PolySTE,
    QuadraticSTE,
    ReActNetA,
    RPReLU,
    ScaledBinaryConv,
    TanhSTE,
    XnorNet,
    randomize_batch_norms,
)

import bnnmlir
from bnnmlir.errors import UnsupportedOperationError

U = 2.0**-24


def _block(act, cin=5, cout=7, **conv):
    torch.manual_seed(1)
    return randomize_batch_norms(nn.Sequential(act, ScaledBinaryConv(cin, cout, **conv),
                                               nn.BatchNorm2d(cout)))


def _kinds(compiled, op="bconv2d"):
    return [r for r in compiled.imported.layers if r.op.endswith(op)]


@pytest.mark.parametrize("act", [QuadraticSTE(), TanhSTE(), ClampSTE()],
                         ids=["bireal", "tanh", "clamp"])
def test_ste_alone_is_the_sign_within_its_bound(act):
    """The estimator's value is sign(x) up to a few float32 roundings, and the bound holds on
    values near the piece boundaries and across the float range."""
    from bnnmlir.frontend.importer import decomposition_table
    from bnnmlir.frontend.ste import deviation_bound, find_ste

    model = nn.Sequential(act).eval()
    x = torch.cat([torch.randn(4000), torch.linspace(-1.5, 1.5, 3001),
                   torch.tensor([0.0, -0.0, 1e-30, -1e-30, 1e18, -1e18])]).reshape(1, 1, -1, 1)
    program = torch.export.export(model, (x,)).run_decompositions(decomposition_table())
    graph = program.graph
    found = list(find_ste(graph, set(graph.nodes)).values())
    assert len(found) == 1
    bound = deviation_bound(found[0], {})
    assert bound is not None and 0 < bound.deviation <= 8 * U
    with torch.no_grad():
        got = model(x)
    err = (got - torch.sign(x)).abs()
    assert float(err.max()) <= bound.deviation
    assert bool((got[x == 0] == 0).all())  # sign(0) - q + q = 0 exactly


def test_unbounded_soft_function_is_refused():
    model = _block(PolySTE(degree=7))
    with pytest.raises(UnsupportedOperationError, match="not bounded"):
        bnnmlir.compile(model, (torch.randn(1, 5, 6, 6),), exact=False)


def test_polynomial_soft_function_holds_on_a_domain():
    """x**3 + x: the bound holds for |x| <= 16 only; larger inputs are counted by compare."""
    model = _block(PolySTE(degree=3))
    x = torch.randn(1, 5, 6, 6)
    compiled = bnnmlir.compile(model, (x,), exact=False)
    [record] = compiled.imported.approximations
    assert record.domain == 16.0
    x[0, 1, 1, 1] = 100.0
    assert compiled.compare(x).near_threshold_total == 1


@pytest.mark.parametrize("act", [QuadraticSTE(), TanhSTE(), ClampSTE()],
                         ids=["bireal", "tanh", "clamp"])
@pytest.mark.parametrize("shape,conv", [((2, 5, 7, 9), {}),
                                        ((1, 5, 5, 4), {"stride": 2, "padding": 0}),
                                        ((3, 5, 1, 1), {"k": 1, "padding": 0})])
def test_exact_false_runs_binary_within_the_bound(act, shape, conv):
    model = _block(act, **conv)
    x = torch.randn(shape)
    compiled = bnnmlir.compile(model, (x,), exact=False)
    assert _kinds(compiled) and not _kinds(compiled, "conv2d")[1:]  # one binary conv, no float
    assert not any(r.op == "bnn.conv2d" for r in compiled.imported.layers)
    [record] = compiled.imported.approximations
    assert "straight-through" in record.idiom and "scaled binary weights" in record.idiom
    with torch.no_grad():
        ref = model[1](model[0](x))
    got_conv = bnnmlir.compile(nn.Sequential(model[0], model[1]).eval(), (x,), exact=False)(x)
    assert float((got_conv - ref).abs().max()) <= record.bound
    result = compiled.compare(x)
    assert result.max_abs_diff <= 1e-3
    assert result.near_threshold_total == 0


def test_exact_true_keeps_the_layer_float_and_warns():
    model = _block(QuadraticSTE())
    x = torch.randn(2, 5, 6, 6)
    compiled = bnnmlir.compile(model, (x,))
    assert not compiled.imported.approximations
    assert any(r.op == "bnn.conv2d" for r in compiled.imported.layers)
    text = " ".join(compiled.warnings)
    for needle in ("straight-through", "scaled binary weights", "deviates", "exact=False",
                   "bnnmlir.nn"):
        assert needle in text
    torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-4)


def test_zero_inputs_are_counted_near_threshold():
    model = _block(ClampSTE())
    x = torch.randn(1, 5, 6, 6)
    compiled = bnnmlir.compile(model, (x,), exact=False)
    assert compiled.imported.approximations[0].zero_as_plus
    x0 = x.clone()
    x0[0, 0, 2, 2] = 0.0
    assert compiled.compare(x0).near_threshold_total == 1


def test_exact_scaled_weights_are_bit_exact():
    """alpha with a short mantissa: every summation order is exact, so exact=True compiles a
    binary kernel whose output equals PyTorch's bit for bit."""
    torch.manual_seed(3)
    conv = nn.Conv2d(6, 5, 3, padding=1, bias=False)
    alpha = torch.tensor([0.75, 0.5, 1.25, 2.0, 0.375]).reshape(5, 1, 1, 1)
    conv.weight.data = alpha * torch.sign(torch.randn(5, 6, 3, 3))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = conv, nn.BatchNorm2d(5)

        def forward(self, x):
            return self.bn(self.conv(torch.where(x >= 0, 1.0, -1.0)))

    model = randomize_batch_norms(Net())
    x = torch.randn(2, 6, 7, 7)
    compiled = bnnmlir.compile(model, (x,))
    assert not compiled.warnings and _kinds(compiled)
    assert torch.equal(compiled(x), model(x))


def test_scaled_weights_without_detach_trick_and_inexact_alpha_warn():
    model = _block(QuadraticSTE(), detach_trick=False)
    compiled = bnnmlir.compile(model, (torch.randn(1, 5, 4, 4),))
    assert any("scaled binary weights" in w for w in compiled.warnings)


def test_learnable_threshold_and_rprelu():
    """sign(x - beta) (RSign's learnable bias) and RPReLU around a scaled binary convolution."""
    torch.manual_seed(4)
    model = randomize_batch_norms(nn.Sequential(
        LearnableBias(6), TanhSTE(), ScaledBinaryConv(6, 6), nn.BatchNorm2d(6), RPReLU(6)))
    x = torch.randn(2, 6, 5, 5)
    compiled = bnnmlir.compile(model, (x,), exact=False)
    assert len(_kinds(compiled)) == 1
    assert compiled.compare(x).max_abs_diff <= 1e-4


def _agreement(model, shape, batches=4):
    torch.manual_seed(7)
    x = torch.randn(shape)
    compiled = bnnmlir.compile(model, (x,), exact=False)
    agree, rows = 0.0, 0
    for _ in range(batches):
        x = torch.randn(shape)
        result = compiled.compare(x)
        agree += result.top1_agreement * shape[0]
        rows += shape[0]
    return compiled, agree / rows


def test_bireal_net18_authors_form():
    torch.manual_seed(5)
    model = randomize_batch_norms(BiRealNet18(width=8, classes=10))
    compiled, agreement = _agreement(model, (8, 3, 32, 32))
    assert len(_kinds(compiled)) == 16  # every scaled binary convolution is a binary kernel
    layers = [a for a in compiled.imported.approximations if a.kind == "layer"]
    assert len(layers) == 16
    assert all(math.isfinite(a.bound) for a in compiled.imported.approximations)
    assert agreement >= 0.999
    exact = bnnmlir.compile(model, (torch.randn(1, 3, 32, 32),))
    assert sum("straight-through" in w for w in exact.warnings) == 16


def test_reactnet_a_style():
    torch.manual_seed(6)
    model = randomize_batch_norms(ReActNetA())
    compiled, agreement = _agreement(model, (8, 3, 16, 16))
    assert len(_kinds(compiled)) == 3 + 5  # a 3x3 per block, a 1x1 (two when doubling)
    assert agreement >= 0.999


@requires_aarch64
@pytest.mark.parametrize("make, shape", [
    (lambda: BiRealNet18(width=8, classes=10), (2, 3, 32, 32)),
    (ReActNetA, (2, 3, 16, 16)),
    (XnorNet, (2, 3, 12, 12)),
], ids=["bireal", "reactnet_a", "xnor_net"])
def test_published_under_qemu_matches_the_host(make, shape):
    """The aarch64 object computes the same binary form as the host, bit for bit, and agrees
    with PyTorch within the bound."""
    torch.manual_seed(8)
    model = randomize_batch_norms(make())
    x = torch.randn(*shape)
    host = bnnmlir.compile(model, (x,), exact=False)
    arm = bnnmlir.compile(model, (x,), exact=False, target="aarch64")
    assert torch.equal(arm(x), host(x))
    assert host.compare(x).top1_agreement == 1.0


def test_xnor_style_block_sign_and_scaled_weights():
    """XNOR-Net's binary convolution: torch.sign activations (0 possible) and mean |W| scaled
    weights, binary with exact=False, float with a warning with exact=True."""
    torch.manual_seed(9)

    class XnorConv(nn.Module):
        def __init__(self):
            super().__init__()
            self.bn = nn.BatchNorm2d(4)
            self.conv = nn.Conv2d(4, 6, 3, padding=1, bias=False)

        def forward(self, x):
            w = self.conv.weight
            alpha = w.abs().mean(dim=(1, 2, 3), keepdim=True)
            return torch.relu(nn.functional.conv2d(torch.sign(self.bn(x)), alpha * torch.sign(w),
                                                   padding=1))

    model = randomize_batch_norms(XnorConv())
    x = torch.randn(2, 4, 5, 6)
    loose = bnnmlir.compile(model, (x,), exact=False)
    assert len(_kinds(loose)) == 1  # one binary kernel, not the ternary expansion
    assert loose.compare(x).max_abs_diff <= loose.imported.approximations[0].bound + 1e-6
    strict = bnnmlir.compile(model, (x,))
    assert any("scaled binary weights" in w for w in strict.warnings)
    torch.testing.assert_close(strict(x), model(x), rtol=1e-5, atol=1e-4)


class _Product(nn.Module):
    """The float glue of XNOR-Net's activation scaling: a run-time product and |x|."""

    def forward(self, x, k):
        return (k * x).abs() if k.shape[1] == 1 else x * k


@settings(max_examples=6, deadline=None)
@given(st.integers(1, 3), st.integers(1, 37), st.integers(1, 6), st.integers(1, 7),
       st.booleans())
def test_runtime_product_and_abs_are_bit_exact(n, c, h, w, per_pixel):
    """``bnn.mul`` is PyTorch's float32 mul (broadcast over channels or not) and abs is exact,
    -0.0 included; the reference interpreter agrees."""
    from bnnmlir.reference.support import mul

    torch.manual_seed(n * 1000 + c * 10 + h)
    x, k = torch.randn(n, c, h, w), torch.randn(n, 1 if per_pixel else c, h, w)
    x[0, 0, 0, 0] = -0.0
    compiled = bnnmlir.compile(_Product(), (x, k), threads=1)
    expected = _Product()(x, k)
    assert torch.equal(compiled(x, k), expected)
    assert torch.equal(torch.signbit(compiled(x, k)), torch.signbit(expected))
    ref = mul(x.permute(0, 2, 3, 1).numpy(), k.permute(0, 2, 3, 1).numpy())
    assert torch.equal(torch.from_numpy(ref).permute(0, 3, 1, 2), x * k)


@requires_aarch64
def test_runtime_product_under_qemu():
    x, k = torch.randn(2, 9, 5, 3), torch.randn(2, 1, 5, 3)
    arm = bnnmlir.compile(_Product(), (x, k), target="aarch64")
    assert torch.equal(arm(x, k), _Product()(x, k))


def test_product_of_incompatible_shapes_is_refused():
    class Bad(nn.Module):
        def forward(self, x, k):
            return x * k

    with pytest.raises(UnsupportedOperationError, match="only a broadcast"):
        bnnmlir.compile(Bad(), (torch.randn(1, 4, 3, 1), torch.randn(1, 1, 1, 3)))


def test_xnor_net_with_activation_scaling():
    """XNOR-Net: sign activations, mean |W| scaled weights, the binary result times
    K = mean_c|a| (*) 1/(k*k) computed at run time: binary kernels with exact=False, float with
    warnings with exact=True (the product and |x| exact, the box filter within float tolerance)."""
    torch.manual_seed(10)
    model = randomize_batch_norms(XnorNet())
    compiled, agreement = _agreement(model, (8, 3, 12, 12))
    assert len(_kinds(compiled)) == 2 and agreement >= 0.999
    assert sum(r.op == "bnn.mul" for r in compiled.imported.layers) == 2
    x = torch.randn(2, 3, 12, 12)
    strict = bnnmlir.compile(model, (x,))
    assert sum("scaled binary weights" in w for w in strict.warnings) == 2
    torch.testing.assert_close(strict(x), model(x), rtol=1e-5, atol=1e-4)
