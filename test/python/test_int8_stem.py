"""The int8 stem and head: integer ``bnn.conv2d`` / ``bnn.dense`` and the division form of
``bnn.affine``, from the training layers (:mod:`bnnmlir.nn.int8`) to compiled code.

(a) The layers: integer weights, straight-through gradients, the fan-in bound.
(b) References: the integer conv2d / dense references equal PyTorch's float64 convolution
    (exact on these integers); the division reference equals PyTorch's ``x / d``.
(c) Loop lowering: tensor-level IR compiled by :func:`bnnmlir.compiler.compile_module` and run,
    bit for bit against the reference evaluator.
(d) Whole networks: ``bnnmlir.compile(model)`` equals ``model.eval()`` with ``torch.equal`` over
    random weights and BatchNorm statistics (negative and zero gamma), batches 1 and 2; the stem
    is reported as an int8 layer and BatchNorm + Clip8 / BatchNorm + sign after it are folded.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import bnnmlir
from bnnmlir.compiler import compile_module, parse_mlir
from bnnmlir.frontend import import_model
from bnnmlir.nn import (
    MAX_FAN_IN,
    BinaryConv2d,
    Clip8,
    Int8Conv2d,
    Int8Linear,
    QuantizeInput,
    quantize_weight,
)
from bnnmlir.passes.fold_to_integer import FoldNotApplied
from bnnmlir.reference import evaluate
from bnnmlir.reference import support as ref

seeds = st.integers(0, 2**32 - 1)


# ---------------------------------------------------------------------------------------------
# (a) Layers
# ---------------------------------------------------------------------------------------------


def test_fan_in_limit_is_1040():
    assert MAX_FAN_IN == 1040 and 127 * 127 * 1040 < 2**24 <= 127 * 127 * 1041
    Int8Conv2d(3, 8, 7)  # K = 147
    Int8Linear(1040, 10)
    with pytest.raises(ValueError, match=r"fan-in 1078 .* largest fan-in is 1040"):
        Int8Conv2d(22, 8, 7)
    with pytest.raises(ValueError, match=r"Int8Linear: fan-in 1041"):
        Int8Linear(1041, 10)
    with pytest.raises(ValueError, match="weight_scale"):
        Int8Conv2d(3, 4, 3, weight_scale=[1.0, 2.0])
    with pytest.raises(ValueError, match="positive"):
        Int8Linear(3, 4, weight_scale=0.0)


@pytest.mark.parametrize("weight_scale", [None, 0.01, [0.02, 0.005, 0.01, 0.03]])
def test_integer_weights_and_output(weight_scale):
    torch.manual_seed(0)
    conv = Int8Conv2d(3, 4, 5, stride=2, padding=2, weight_scale=weight_scale)
    q = conv.integer_weight()
    s = conv.weight_scales().reshape(-1, 1, 1, 1)
    want = torch.clamp(torch.round(conv.weight / s), -127, 127)
    assert torch.equal(q, want) and q.abs().max() <= 127
    if weight_scale is None:  # per-channel max: every channel reaches +-127
        assert torch.equal(q.abs().amax(dim=(1, 2, 3)), torch.full((4,), 127.0))
    x = QuantizeInput(0.01)(torch.randn(2, 3, 9, 9))
    y = conv(x)
    exact = F.conv2d(x.double(), q.double(), None, 2, 2)
    assert torch.equal(y.double(), exact)


def test_straight_through_gradient():
    w = torch.tensor([0.3, -1.26, 5.0, -0.004], requires_grad=True)
    scale = torch.tensor(0.01)
    q = quantize_weight(w, scale)
    assert q.tolist() == [30.0, -126.0, 127.0, -0.0]
    q.sum().backward()
    assert torch.allclose(w.grad, torch.tensor([100.0, 100.0, 0.0, 100.0]))  # 1/s; 0 clamped


# ---------------------------------------------------------------------------------------------
# (b) References
# ---------------------------------------------------------------------------------------------


@st.composite
def int_conv_cases(draw):
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    pad = tuple(draw(st.integers(0, 3)) for _ in range(4))
    span = [d[i] * (k[i] - 1) + 1 for i in range(2)]
    h = draw(st.integers(max(1, span[0] - pad[0] - pad[1]), 9))
    w = draw(st.integers(max(1, span[1] - pad[2] - pad[3]), 9))
    return dict(n=draw(st.integers(1, 2)), h=h, w=w, c=draw(st.integers(1, 9)),
                o=draw(st.integers(1, 7)), k=k, s=s, d=d, pad=pad)


def _int8(rng, shape):
    return rng.integers(-128, 128, shape).astype(np.int8)


@settings(max_examples=40, deadline=None)
@given(int_conv_cases(), seeds)
def test_integer_conv2d_reference_matches_torch(case, seed):
    rng = np.random.default_rng(seed)
    x = _int8(rng, (case["n"], case["h"], case["w"], case["c"]))
    w = _int8(rng, (case["o"], *case["k"], case["c"]))
    got = ref.conv2d_int(x, w, case["s"], case["d"], case["pad"])
    pt, pb, pl, pr = case["pad"]
    xt = F.pad(torch.from_numpy(x).permute(0, 3, 1, 2).double(), (pl, pr, pt, pb))
    want = F.conv2d(xt, torch.from_numpy(w).permute(0, 3, 1, 2).double(), stride=case["s"],
                    dilation=case["d"])
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, want.permute(0, 2, 3, 1).numpy().astype(np.int64))


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 4), st.integers(1, 300), st.integers(1, 9), seeds)
def test_integer_dense_reference_matches_torch(n, c, o, seed):
    rng = np.random.default_rng(seed)
    x, w = _int8(rng, (n, c)), _int8(rng, (o, c))
    want = F.linear(torch.from_numpy(x).double(), torch.from_numpy(w).double())
    np.testing.assert_array_equal(ref.dense_int(x, w), want.numpy().astype(np.int64))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0.0009765625, 1024.0, width=32), min_size=1, max_size=5), seeds)
def test_affine_divide_matches_torch_division(divisors, seed):
    rng = np.random.default_rng(seed)
    d = np.asarray(divisors, dtype=np.float32)
    x = (rng.standard_normal((50, d.size)) * 100).astype(np.float32)
    x[0, :] = -0.0
    got = ref.affine_divide(x, d, np.full(d.size, -0.0, np.float32))
    want = (torch.from_numpy(x) / torch.from_numpy(d)).numpy()
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))


# ---------------------------------------------------------------------------------------------
# (c) Loop lowering, executed
# ---------------------------------------------------------------------------------------------


def _dense_attr(values: np.ndarray) -> str:
    shape = "x".join(map(str, values.shape))
    body = np.array2string(values, separator=", ", threshold=10**9, max_line_width=10**9)
    return f"dense<{body}> : tensor<{shape}xi8>"


def _run_both(text: str, inputs: list[np.ndarray]) -> None:
    want = evaluate(parse_mlir(text), inputs)
    got = compile_module(parse_mlir(text), target="host", threads=1)(*inputs)
    for g, w in zip(got, want, strict=True):
        w = np.ascontiguousarray(w)
        assert g.dtype == w.dtype and g.shape == w.shape
        assert np.array_equal(g.view(np.uint8), w.view(np.uint8))


@settings(max_examples=6, deadline=None)
@given(int_conv_cases(), seeds)
def test_integer_conv2d_dense_and_division_compiled(case, seed):
    rng = np.random.default_rng(seed)
    n, h, w, c, o = (case[k] for k in "nhwco")
    (kh, kw), (sh, sw), (dh, dw), pad = case["k"], case["s"], case["d"], case["pad"]
    oh = (h + pad[0] + pad[1] - dh * (kh - 1) - 1) // sh + 1
    ow = (w + pad[2] + pad[3] - dw * (kw - 1) - 1) // sw + 1
    weight = _int8(rng, (o, kh, kw, c))
    weight.flat[0] = -128
    dense_w = _int8(rng, (5, c))
    divisor = rng.uniform(0.01, 10, c).astype(np.float32)
    xt, ot = f"tensor<{n}x{h}x{w}x{c}xi8>", f"tensor<{n}x{oh}x{ow}x{o}xi32>"
    text = (
        f"func.func @main(%x: {xt}, %d: tensor<3x{c}xi8>, %f: tensor<4x{c}xf32>) -> "
        f"({ot}, tensor<3x5xi32>, tensor<4x{c}xf32>) {{\n"
        f"  %w = arith.constant {_dense_attr(weight)}\n"
        f"  %dw = arith.constant {_dense_attr(dense_w)}\n"
        f"  %0 = bnn.conv2d %x, %w {{strides = array<i64: {sh}, {sw}>, dilations = array<i64: "
        f"{dh}, {dw}>, padding = array<i64: {', '.join(map(str, pad))}>}} : {xt}, "
        f"tensor<{o}x{kh}x{kw}x{c}xi8> -> {ot}\n"
        f"  %1 = bnn.dense %d, %dw : tensor<3x{c}xi8>, tensor<5x{c}xi8> -> tensor<3x5xi32>\n"
        f"  %2 = bnn.affine %f {{divisor = array<f32: {', '.join(repr(float(v)) for v in divisor)}>"
        f", bias = array<f32: {', '.join(['-0.0'] * c)}>}} : tensor<4x{c}xf32> -> tensor<4x{c}xf32>\n"
        f"  func.return %0, %1, %2 : {ot}, tensor<3x5xi32>, tensor<4x{c}xf32>\n}}\n"
    )
    x = _int8(rng, (n, h, w, c))
    x.flat[: min(3, x.size)] = -128  # the extremes of i8
    f = (rng.standard_normal((4, c)) * 10).astype(np.float32)
    f[0] = -0.0
    _run_both(text, [x, _int8(rng, (3, c)), f])


def test_integer_conv2d_largest_sums_compiled():
    """All-(-128) inputs and weights: the i32 accumulator holds 128*128*K exactly."""
    k = 3 * 3 * 64
    text = (
        "func.func @main(%x: tensor<1x3x3x64xi8>, %w: tensor<2x3x3x64xi8>) -> tensor<1x1x1x2xi32> {\n"
        "  %0 = bnn.conv2d %x, %w {strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, "
        "padding = array<i64: 0, 0, 0, 0>} : tensor<1x3x3x64xi8>, tensor<2x3x3x64xi8> -> "
        "tensor<1x1x1x2xi32>\n  func.return %0 : tensor<1x1x1x2xi32>\n}\n"
    )
    x = np.full((1, 3, 3, 64), -128, np.int8)
    w = np.full((2, 3, 3, 64), -128, np.int8)
    w[1] = 127
    _run_both(text, [x, w])
    got = compile_module(parse_mlir(text), target="host", threads=1)(x, w)[0]
    assert got.reshape(-1).tolist() == [128 * 128 * k, -128 * 127 * k]


# ---------------------------------------------------------------------------------------------
# (d) Whole networks
# ---------------------------------------------------------------------------------------------


def randomize_bn(bn: nn.BatchNorm2d, gen: torch.Generator, center: float, spread: float) -> None:
    """Random statistics around the integer scale of the input, one zero and one negative gamma."""
    c = bn.num_features
    bn.running_mean.copy_(torch.randn(c, generator=gen) * center)
    bn.running_var.copy_(torch.rand(c, generator=gen) * spread**2 + 1.0)
    bn.weight.data.copy_(torch.randn(c, generator=gen) * 60)
    bn.bias.data.copy_(torch.randn(c, generator=gen) * 30)
    bn.weight.data[0] = 0.0
    bn.weight.data[1] = -bn.weight.data[1].abs() - 1.0


def stem_network(seed: int, then_clip8: bool = True) -> nn.Sequential:
    """QuantizeInput (scale not a power of two) -> Int8Conv2d 7x7/2 -> BN -> Clip8 (or sign)
    -> BinaryConv2d -> BN -> Clip8 -> Int8Linear."""
    torch.manual_seed(seed)
    layers = [QuantizeInput(0.0123), Int8Conv2d(3, 8, 7, stride=2, padding=3), nn.BatchNorm2d(8)]
    if then_clip8:
        layers.append(Clip8())
    layers += [BinaryConv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), Clip8(),
               nn.Flatten(), Int8Linear(16 * 4 * 4, 10)]
    model = nn.Sequential(*layers)
    gen = torch.Generator().manual_seed(seed + 100)
    randomize_bn(layers[2], gen, center=3000.0, spread=4000.0)
    randomize_bn(layers[-4], gen, center=5.0, spread=10.0)
    return model.eval()


def _input(batch: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 3, 16, 16, generator=gen) * 2.2 - 0.6  # saturates at both ends
    k = torch.arange(-30, 30, dtype=torch.float32) + 0.5  # rounding ties of x / scale
    x.view(-1)[: k.numel()] = k * torch.tensor(0.0123, dtype=torch.float32)
    return x


def _compile(model: nn.Module, x: torch.Tensor):
    with warnings.catch_warnings():
        warnings.simplefilter("error", FoldNotApplied)  # every BatchNorm must fold
        return bnnmlir.compile(model, (x,), threads=1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_int8_stem_network_is_bit_exact(seed):
    model = stem_network(seed)
    for batch in (1, 2):
        x = _input(batch, seed)
        compiled = _compile(model, x)
        with torch.no_grad():
            want = model(x)
        for probe in (x, _input(batch, seed + 7) * 1.5):
            with torch.no_grad():
                want = model(probe)
            assert torch.equal(compiled(probe), want)
        assert (want != 0).any()
    optimized = compiled.mlir("optimized")
    assert "bnn.batch_norm" not in optimized and "xf32>, tensor<8x7x7x3xf32>" not in optimized
    rows = {row.layer: row for row in compiled.report().rows}
    stem = rows["1"]
    assert stem.kind == "int8" and "conv2d" in stem.ops and stem.output == "i32[2x8x8x8]"
    assert stem.macs == 2 * 8 * 8 * 8 * 7 * 7 * 3
    assert rows["8"].kind == "int8" and rows["8"].ops == ["dense"]
    assert "int8" in str(compiled.report())


def test_int8_stem_then_sign_folds_to_a_threshold():
    model = stem_network(5, then_clip8=False)
    x = _input(2, 5)
    compiled = _compile(model, x)
    for probe in (x, _input(2, 9)):
        with torch.no_grad():
            assert torch.equal(compiled(probe), model(probe))
    optimized = compiled.mlir("optimized")
    assert "bnn.batch_norm" not in optimized
    assert "bnn.threshold" in optimized or 'output = "threshold"' in optimized


def test_imported_stem_ir_and_interval():
    model = stem_network(3)
    imported = import_model(model, (_input(1, 3),))
    ops = [op for op in next(iter(imported.module.ops)).body.block.ops]
    conv = next(op for op in ops if op.name == "bnn.conv2d")
    assert conv.is_integer and str(conv.result.type) == "tensor<1x8x8x8xi32>"
    assert str(conv.input.type).endswith("xi8>")
    # The value-range analysis derives the interval of the integer convolution from its weights.
    from bnnmlir.passes.value_range import ValueRanges

    assert not any(op.name == "bnn.activation" for op in ops)
    interval = ValueRanges().range_of(conv.result)
    q = model[1].integer_weight().detach().double().reshape(8, -1)
    peak = int((q.abs().sum(dim=1) * 127).max())
    lo, hi = interval.lo, interval.hi
    assert -peak <= lo < 0 < hi <= peak  # a sound interval within the generic bound
    assert lo == int((torch.minimum(q * -127, q * 127).sum(1)).min())
    dense = next(op for op in ops if op.name == "bnn.dense")
    assert dense.is_integer and imported.warnings == []
    affine = next(op for op in ops if op.name == "bnn.affine")
    assert affine.divides


def test_integer_weights_on_a_float_or_wide_path_stay_float():
    torch.manual_seed(4)
    # float input: float convolution; integer input but sums that may pass 2**24: float + warning
    conv = nn.Conv2d(3, 2, 3, bias=False)
    conv.weight.data = torch.randint(-127, 128, conv.weight.shape).float()
    imported = import_model(nn.Sequential(conv).eval(), (torch.randn(1, 3, 5, 5),))
    convs = [op for op in next(iter(imported.module.ops)).body.block.ops if op.name == "bnn.conv2d"]
    assert not convs[0].is_integer

    wide = nn.Conv2d(120, 2, 3, bias=False)  # K = 1080: 127 * 127 * 1080 > 2**24
    wide.weight.data = torch.full(wide.weight.shape, 127.0)
    model = nn.Sequential(QuantizeInput(1 / 64), wide).eval()
    imported = import_model(model, (torch.randn(1, 120, 3, 3),))
    convs = [op for op in next(iter(imported.module.ops)).body.block.ops if op.name == "bnn.conv2d"]
    assert not convs[0].is_integer
    assert any("2**24" in w for w in imported.warnings)

    biased = nn.Conv2d(3, 2, 3, bias=True)
    biased.weight.data = torch.randint(-127, 128, biased.weight.shape).float()
    imported = import_model(nn.Sequential(QuantizeInput(1 / 64), biased).eval(),
                            (torch.randn(1, 3, 5, 5),))
    convs = [op for op in next(iter(imported.module.ops)).body.block.ops if op.name == "bnn.conv2d"]
    assert not convs[0].is_integer and convs[0].bias is not None


def test_plain_conv_with_integer_weights_on_the_int8_stream_is_integer_and_exact():
    """Recognition is by values: an nn.Conv2d whose weights happen to be int8 integers."""
    torch.manual_seed(6)
    conv = nn.Conv2d(4, 3, 3, padding=1, bias=False)
    conv.weight.data = torch.randint(-128, 128, conv.weight.shape).float()
    model = nn.Sequential(QuantizeInput(0.05), conv, Clip8()).eval()
    x = torch.randn(2, 4, 6, 6)
    imported = import_model(model, (x,))
    names = [op.name for op in next(iter(imported.module.ops)).body.block.ops]
    assert "bnn.activation" not in names  # no hint without a float chain after the conv
    got = evaluate(imported.module, [x.numpy()])[0]
    with torch.no_grad():
        assert torch.equal(torch.from_numpy(got), model(x))
