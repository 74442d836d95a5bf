"""The integer and float support ops: numpy reference vs PyTorch, and compiled code vs reference.

(a) :mod:`bnnmlir.reference.support` against ``torch.nn.functional`` (NCHW tensors permuted
    from NHWC): integer ops and max pooling exactly, float ops within rtol 1e-5 / atol 1e-4;
    BatchNorm bit-exactly in one of its two float32 evaluation orders; ``bnn.requant8`` against
    :class:`bnnmlir.folding.Requant`.
(b) Tensor-level functions compiled by :func:`bnnmlir.compiler.compile_module` for the host and
    run on random inputs, compared bit for bit with :func:`bnnmlir.reference.evaluate`.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from conftest import requires_aarch64

from bnnmlir.compiler import compile_module, parse_mlir
from bnnmlir.dialects.bnn_support import Requant8Op
from bnnmlir.passes.loops.float_conv import (MAX_BLOCKS, MAX_PIXELS, SLACK, FloatConvPlan,
                                             plan_float_conv, vector_registers)
from bnnmlir.reference import evaluate, random_inputs
from bnnmlir.reference import support as ref
from bnnmlir.target import get_target

RTOL, ATOL = 1e-5, 1e-4
F32 = np.float32


def nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).contiguous()


def nhwc(t: torch.Tensor) -> np.ndarray:
    return t.permute(0, 2, 3, 1).contiguous().numpy()


def rng_of(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


seeds = st.integers(0, 2**32 - 1)


# ---------------------------------------------------------------------------------------------
# (a) Reference vs PyTorch
# ---------------------------------------------------------------------------------------------


@st.composite
def conv_cases(draw):
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    s = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pad = tuple(draw(st.integers(0, 2)) for _ in range(4))
    span = [d[i] * (k[i] - 1) + 1 for i in range(2)]
    h = draw(st.integers(max(1, span[0] - pad[0] - pad[1]), 9))
    w = draw(st.integers(max(1, span[1] - pad[2] - pad[3]), 9))
    return dict(n=draw(st.integers(1, 3)), h=h, w=w, c=draw(st.integers(1, 19)),
                o=draw(st.integers(1, 40)), k=k, s=s, d=d, pad=pad, bias=draw(st.booleans()))


@settings(max_examples=40, deadline=None)
@given(conv_cases(), seeds, st.booleans())
def test_conv2d_matches_torch(case, seed, int8_input):
    rng = rng_of(seed)
    shape = (case["n"], case["h"], case["w"], case["c"])
    x = rng.integers(-127, 128, shape).astype(np.int8) if int8_input else rng.standard_normal(shape).astype(F32)
    wt = rng.standard_normal((case["o"], *case["k"], case["c"])).astype(F32)
    b = rng.standard_normal(case["o"]).astype(F32) if case["bias"] else None
    got = ref.conv2d(x, wt, b, case["s"], case["d"], case["pad"])
    pt, pb, pl, pr = case["pad"]
    # In float64: torch 2.13's float32 CPU convolution (oneDNN) intermittently returns garbage
    # for some strided geometries with one output column (e.g. 3x4 input, 2x3 kernel,
    # stride (1, 2), batch 3).
    xt = F.pad(nchw(x.astype(np.float64)), (pl, pr, pt, pb))
    want = F.conv2d(xt, nchw(wt.astype(np.float64)),
                    None if b is None else torch.from_numpy(b.astype(np.float64)),
                    stride=case["s"], dilation=case["d"]).float()
    scale = 127.0 if int8_input else 1.0  # products of int8 values are larger
    np.testing.assert_allclose(got, nhwc(want), rtol=RTOL, atol=ATOL * scale)
    assert got.dtype == F32


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 4), st.integers(1, 67), st.integers(1, 13), seeds,
       st.sampled_from(["f32", "i8", "i32"]), st.booleans())
def test_dense_matches_torch(n, c, o, seed, dtype, bias):
    rng = rng_of(seed)
    if dtype == "f32":
        x = rng.standard_normal((n, c)).astype(F32)
    else:
        x = rng.integers(-127, 128, (n, c)).astype(np.int8 if dtype == "i8" else np.int32)
    w = rng.standard_normal((o, c)).astype(F32)
    b = rng.standard_normal(o).astype(F32) if bias else None
    got = ref.dense(x, w, b)
    want = F.linear(torch.from_numpy(x.astype(F32)), torch.from_numpy(w),
                    None if b is None else torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL * (1 if dtype == "f32" else 127))


@st.composite
def pool_cases(draw):
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    p = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))  # PyTorch: pad <= k/2
    h = draw(st.integers(max(1, k[0] - 2 * p[0]), 9))
    w = draw(st.integers(max(1, k[1] - 2 * p[1]), 9))
    return dict(n=draw(st.integers(1, 3)), h=h, w=w, c=draw(st.integers(1, 21)), k=k, s=s, p=p)


@settings(max_examples=40, deadline=None)
@given(pool_cases(), seeds, st.sampled_from(["f32", "i8", "i32"]))
def test_max_pool_matches_torch_exactly(case, seed, dtype):
    rng = rng_of(seed)
    shape = (case["n"], case["h"], case["w"], case["c"])
    if dtype == "f32":
        x = rng.standard_normal(shape).astype(F32)
    else:
        x = rng.integers(-128, 128, shape).astype(np.int8 if dtype == "i8" else np.int32)
    (ph, pw), padding = case["p"], (case["p"][0], case["p"][0], case["p"][1], case["p"][1])
    got = ref.pool2d(x, "max", case["k"], case["s"], padding)
    want = nhwc(F.max_pool2d(nchw(x.astype(F32)), case["k"], case["s"], (ph, pw)))
    assert got.dtype == x.dtype
    np.testing.assert_array_equal(got, want.astype(x.dtype))


@settings(max_examples=40, deadline=None)
@given(pool_cases(), seeds, st.booleans(), st.booleans())
def test_avg_pool_matches_torch(case, seed, include_pad, int8_input):
    rng = rng_of(seed)
    shape = (case["n"], case["h"], case["w"], case["c"])
    x = rng.integers(-127, 128, shape).astype(np.int8) if int8_input else rng.standard_normal(shape).astype(F32)
    (ph, pw), padding = case["p"], (case["p"][0], case["p"][0], case["p"][1], case["p"][1])
    got = ref.pool2d(x, "avg", case["k"], case["s"], padding, include_pad)
    want = nhwc(F.avg_pool2d(nchw(x.astype(F32)), case["k"], case["s"], (ph, pw),
                             count_include_pad=include_pad))
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 3), st.integers(1, 9), st.integers(1, 9), st.integers(1, 33), seeds, st.booleans())
def test_global_avg_pool_matches_torch(n, h, w, c, seed, int8_input):
    rng = rng_of(seed)
    x = rng.integers(-127, 128, (n, h, w, c)).astype(np.int8) if int8_input else rng.standard_normal((n, h, w, c)).astype(F32)
    got = ref.global_avg_pool(x)
    want = F.adaptive_avg_pool2d(nchw(x.astype(F32)), 1).reshape(n, c).numpy()
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


def _bn_case(rng, n, h, w, c):
    x = (rng.standard_normal((n, h, w, c)) * 3).astype(F32)
    mean = rng.standard_normal(c).astype(F32)
    var = (rng.random(c) * 2 + 0.01).astype(F32)
    gamma = rng.standard_normal(c).astype(F32)
    beta = rng.standard_normal(c).astype(F32)
    return x, mean, var, gamma, beta


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 3), st.integers(1, 7), st.integers(1, 7), st.integers(1, 70), seeds,
       st.sampled_from([1e-5, 1e-3, 0.1]))
def test_batch_norm_matches_torch(n, h, w, c, seed, eps):
    """Within tolerance always; bit-exact in one of the two float32 orders: PyTorch's CPU kernel
    computes ``x * scale + shift`` and ``beta - mean * scale``, which builds with FMA contraction
    turn into fused multiply-adds (one rounding each)."""
    x, mean, var, gamma, beta = _bn_case(rng_of(seed), n, h, w, c)
    want = nhwc(F.batch_norm(nchw(x), *(torch.from_numpy(a) for a in (mean, var, gamma, beta)),
                             training=False, eps=eps))
    plain = ref.batch_norm(x, mean, var, gamma, beta, eps)
    np.testing.assert_allclose(plain, want, rtol=RTOL, atol=ATOL)
    fused = ref.batch_norm(x, mean, var, gamma, beta, eps, fused=True)
    assert np.array_equal(plain, want) or np.array_equal(fused, want)


def test_fma_f32_rounds_once():
    one_ulp = F32(1.0 + 2.0**-23)
    # 1 + 2**-24 is an exact tie: to even.
    assert ref.fma_f32(F32(2.0**-12), F32(2.0**-12), F32(1.0)) == F32(1.0)
    # Just above the tie between 1 and 1 + 2**-23: up.
    assert ref.fma_f32(F32(2.0**-12), F32(2.0**-12 + 2.0**-35), F32(1.0)) == one_ulp
    # 2**-24 - 2**-70 added to 1 + 2**-23: float64 rounds the sum onto the tie, whose even
    # neighbour is above; the single rounding of the exact value is below.
    a, b = F32(2.0**-12 * (1 + 2.0**-23)), F32(2.0**-12 * (1 - 2.0**-23))
    assert ref.fma_f32(a, b, one_ulp) == one_ulp
    assert F32(np.float64(a) * np.float64(b) + np.float64(one_ulp)) != one_ulp


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 3), st.integers(1, 6), st.integers(1, 40), seeds)
def test_activations_match_torch(n, h, c, seed):
    rng = rng_of(seed)
    x = rng.standard_normal((n, h, 3, c)).astype(F32)
    x[rng.random(x.shape) < 0.1] = 0.0
    slopes = rng.standard_normal(c).astype(F32)
    np.testing.assert_array_equal(ref.relu(x), F.relu(torch.from_numpy(x)).numpy())
    np.testing.assert_array_equal(ref.hardtanh(x, -0.5, 1.25),
                                  F.hardtanh(torch.from_numpy(x), -0.5, 1.25).numpy())
    np.testing.assert_allclose(ref.prelu(x, slopes),
                               nhwc(F.prelu(nchw(x), torch.from_numpy(slopes))), rtol=RTOL, atol=ATOL)
    q = rng.integers(-128, 128, (n, c)).astype(np.int8)
    np.testing.assert_array_equal(ref.relu(q), np.maximum(q, 0))
    np.testing.assert_array_equal(ref.hardtanh(q, -64.0, 63.0), np.clip(q, -64, 63))


def test_relu_hardtanh_ieee_corner_cases():
    x = np.array([-0.0, 0.0, np.nan, -np.inf, np.inf], dtype=F32)
    r = ref.relu(x)
    assert not np.signbit(r[0]) and r[1] == 0 and np.isnan(r[2]) and r[3] == 0 and r[4] == np.inf
    t = ref.hardtanh(x, -1.0, 1.0)
    assert np.isnan(t[2]) and t[3] == -1 and t[4] == 1


@settings(max_examples=20, deadline=None)
@given(st.lists(st.integers(1, 9), min_size=1, max_size=4), st.integers(1, 3), seeds)
def test_concat_add_transpose_reshape(widths, n, seed):
    rng = rng_of(seed)
    parts = [rng.integers(-128, 128, (n, 2, 3, c)).astype(np.int8) for c in widths]
    cat = ref.concat(parts)
    want = nhwc(torch.cat([nchw(p) for p in parts], dim=1))
    np.testing.assert_array_equal(cat, want)
    np.testing.assert_array_equal(ref.add(parts[0], parts[0]), parts[0].astype(np.int16) * 2)
    wide = rng.integers(-(2**31), 2**31, (5,)).astype(np.int32)
    np.testing.assert_array_equal(ref.add(wide, wide), (wide.astype(np.int64) * 2).astype(np.int32))
    np.testing.assert_array_equal(ref.transpose(cat, (0, 3, 1, 2)), nchw(cat).numpy())
    np.testing.assert_array_equal(ref.reshape(cat, (n, -1)), torch.from_numpy(cat).flatten(1).numpy())


# Requant ------------------------------------------------------------------------------------


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 9), seeds, st.sampled_from(["affine", "breakpoints", "table"]))
def test_requant8_matches_folding(channels, seed, kind):
    """Fold BatchNorm + round + clamp on [-127, 127] into each kind; the op's reference (built
    through ``Requant8Op.from_requant``) equals ``Requant.apply`` on the whole domain."""
    from bnnmlir.folding import fold_clip8

    rng = rng_of(seed)
    scale = torch.from_numpy((rng.standard_normal(channels) * 2).astype(F32))
    shift = torch.from_numpy((rng.standard_normal(channels) * 20).astype(F32))

    def fn(x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(torch.round(x * scale + shift), -127, 127)

    requant = fold_clip8(fn, channels, -127, 127, kinds=[kind])
    x = np.repeat(np.arange(-127, 128, dtype=np.int8)[:, None], channels, axis=1)
    from xdsl.dialects.builtin import TensorType, i8

    op = Requant8Op.from_requant(_fake_value(x), requant, result_type=TensorType(i8, x.shape))
    op.verify()
    got = evaluate_op(op, x)
    np.testing.assert_array_equal(got, requant.apply(x))


def _fake_value(x: np.ndarray):
    from xdsl.dialects.builtin import TensorType
    from xdsl.ir import Block

    from bnnmlir.ir_utils import mlir_element_type

    t = TensorType(mlir_element_type(x.dtype), x.shape)
    _fake_value.blocks.append(block := Block(arg_types=[t]))  # keep the block alive
    return block.args[0]


_fake_value.blocks = []


def evaluate_op(op, *args):
    from bnnmlir.reference.interpreter import EVALUATORS

    return EVALUATORS[type(op)](op, list(args))


def test_requant8_clamps_outside_the_folded_domain():
    x = np.array([[-1000, 5, 1000]], dtype=np.int32).T.repeat(2, axis=1)  # [3, 2]
    table = np.array([[1, 2, 3], [-4, -5, -6]])
    np.testing.assert_array_equal(ref.requant8_table(x, -1, table), [[1, -4], [3, -6], [3, -6]])
    bps = np.array([[0, 2**31 - 1], [4, 9]])
    got = ref.requant8_breakpoints(np.array([[2**31 - 1, 9]]), [127, -126], [1, -1], bps)
    np.testing.assert_array_equal(got, [[127, -127]])
    got = ref.requant8_affine(np.array([[-3, 2**31 - 1]]), [5, 2**31 - 1], [0, 0], [1, 0])
    np.testing.assert_array_equal(got, [[-8, 127]])  # floor(-15 / 2) = -8


# ---------------------------------------------------------------------------------------------
# (b) Compiled code vs reference, bit for bit
# ---------------------------------------------------------------------------------------------


def run_both(text: str, seed: int = 0, inputs: list[np.ndarray] | None = None) -> None:
    module = parse_mlir(text)
    arrays = inputs if inputs is not None else random_inputs(module, seed=seed)
    want = evaluate(module, arrays)
    program = compile_module(parse_mlir(text), target="host", threads=1)
    got = program(*arrays)
    assert len(got) == len(want)
    for k, (g, w) in enumerate(zip(got, want)):
        w = np.ascontiguousarray(w)
        assert g.dtype == w.dtype and g.shape == w.shape, f"output {k}: {g.dtype}{g.shape} vs {w.dtype}{w.shape}"
        assert np.array_equal(g.view(np.uint8), w.view(np.uint8)), f"output {k} differs:\n{g}\n{w}"


def func(args: str, results: str, body: str, ret: str) -> str:
    return f"func.func @main({args}) -> ({results}) {{\n{body}\n  func.return {ret} : {results}\n}}\n"


def dense_const(values: np.ndarray) -> str:
    """``arith.constant dense<...>`` holding ``values`` exactly (f32 or integers)."""
    is_float = values.dtype.kind == "f"

    def fmt(a: np.ndarray) -> str:
        if a.ndim == 0:
            return repr(float(a)) if is_float else str(int(a))
        return "[" + ", ".join(fmt(row) for row in a) + "]"

    shape = "x".join(map(str, values.shape))
    elem = "f32" if is_float else f"i{values.dtype.itemsize * 8}"
    return f"arith.constant dense<{fmt(values)}> : tensor<{shape}x{elem}>"


def f32_list(values: np.ndarray) -> str:
    return ", ".join(repr(float(v)) for v in np.asarray(values, dtype=F32))


def conv_text(case, seed, int8_input) -> str:
    rng = rng_of(seed)
    n, h, w, c, o = (case[k] for k in "nhwco")
    (kh, kw), (sh, sw), (dh, dw), pad = case["k"], case["s"], case["d"], case["pad"]
    oh = (h + pad[0] + pad[1] - dh * (kh - 1) - 1) // sh + 1
    ow = (w + pad[2] + pad[3] - dw * (kw - 1) - 1) // sw + 1
    elem = "i8" if int8_input else "f32"
    weight = rng.standard_normal((o, kh, kw, c)).astype(F32)
    bias = rng.standard_normal(o).astype(F32)
    use_bias = " bias %b" if case["bias"] else ""
    bias_type = f" bias tensor<{o}xf32>" if case["bias"] else ""
    body = (
        f"  %w = {dense_const(weight)}\n  %b = {dense_const(bias)}\n"
        f"  %0 = bnn.conv2d %x, %w{use_bias} {{strides = array<i64: {sh}, {sw}>, "
        f"dilations = array<i64: {dh}, {dw}>, padding = array<i64: {', '.join(map(str, pad))}>}} : "
        f"tensor<{n}x{h}x{w}x{c}x{elem}>, tensor<{o}x{kh}x{kw}x{c}xf32>{bias_type} -> "
        f"tensor<{n}x{oh}x{ow}x{o}xf32>"
    )
    return func(f"%x: tensor<{n}x{h}x{w}x{c}x{elem}>", f"tensor<{n}x{oh}x{ow}x{o}xf32>", body, "%0")


@settings(max_examples=8, deadline=None)
@given(conv_cases(), seeds, st.booleans())
def test_conv2d_compiled(case, seed, int8_input):
    run_both(conv_text(case, seed, int8_input), seed)


FLOAT_CONV_CASES = [  # vectors of output channels and a scalar tail; 3 channels unrolled
    dict(n=2, h=7, w=6, c=3, o=37, k=(3, 3), s=(2, 1), d=(1, 1), pad=(1, 1, 2, 0), bias=True),
    dict(n=1, h=5, w=9, c=12, o=9, k=(2, 3), s=(1, 2), d=(2, 1), pad=(0, 1, 1, 1), bias=False),
    # 4 full vectors (host) then 6 scalar channels; 21 interior columns: whole pixel blocks,
    # the columns left over and the borders
    dict(n=2, h=5, w=23, c=3, o=70, k=(3, 3), s=(1, 1), d=(1, 1), pad=(1, 1, 1, 1), bias=True),
    # a stem-like 7x7 stride-2 layer, 20 channels (one vector and 4 scalars on host)
    dict(n=1, h=17, w=19, c=3, o=20, k=(7, 7), s=(2, 2), d=(1, 1), pad=(3, 3, 3, 3), bias=False),
]


@requires_aarch64
@pytest.mark.parametrize("case", FLOAT_CONV_CASES)
def test_float_conv2d_vectorized_under_qemu(case):
    """The float convolution's vector path (NEON: 4 lanes) equals the reference bit for bit."""
    run_under_qemu(conv_text(case, 3, False), "@conv", 3)


def run_under_qemu(text: str, name: str, seed: int) -> None:
    """The aarch64 program of ``text`` (its ``@main`` renamed ``name``) under qemu equals the
    reference bit for bit."""
    module = parse_mlir(text)
    arrays = random_inputs(module, seed=seed)
    [want] = evaluate(module, arrays)
    program = compile_module(parse_mlir(text.replace("@main", name)), target="aarch64")
    [got] = program.run_aarch64(*arrays)
    assert np.array_equal(got.view(np.uint8), np.ascontiguousarray(want).view(np.uint8))


@pytest.mark.parametrize("case", FLOAT_CONV_CASES)
def test_float_conv2d_vectorized_on_host(case):
    run_both(conv_text(case, 3, False), 3)


DENSE_CASES = [  # (batch, channels, outputs, input type): vectors, scalar tails, batch blocks
    (1, 37, 70, "f32"), (9, 5, 17, "f32"), (13, 40, 33, "i8"), (2, 300, 1, "i32"),
]


def float_dense_text(n: int, c: int, o: int, elem: str, seed: int) -> str:
    rng = rng_of(seed)
    w = rng.standard_normal((o, c)).astype(F32)
    b = rng.standard_normal(o).astype(F32)
    body = (f"  %w = {dense_const(w)}\n  %b = {dense_const(b)}\n"
            f"  %0 = bnn.dense %x, %w bias %b : tensor<{n}x{c}x{elem}>, tensor<{o}x{c}xf32> "
            f"bias tensor<{o}xf32> -> tensor<{n}x{o}xf32>")
    return func(f"%x: tensor<{n}x{c}x{elem}>", f"tensor<{n}x{o}xf32>", body, "%0")


@pytest.mark.parametrize("case", DENSE_CASES)
def test_float_dense_vectorized_on_host(case):
    """The float dense layer with constant weights (the vector path: the batch rows as pixel
    columns) equals the reference bit for bit."""
    run_both(float_dense_text(*case, seed=4), 4)


@requires_aarch64
@pytest.mark.parametrize("case", DENSE_CASES[:2])
def test_float_dense_vectorized_under_qemu(case):
    run_under_qemu(float_dense_text(*case, seed=4), "@dense", 4)


@pytest.mark.parametrize("target", ["host", "host-novnni", "aarch64"])
@pytest.mark.parametrize("out_channels", [1, 3, 16, 17, 64, 70, 1000])
def test_float_conv_plan_fits_the_registers(target, out_channels):
    """The block holds its accumulators, weights and broadcast in the target's registers, and
    no block that fits does more multiply-adds per step."""
    info = get_target(target)
    plan = plan_float_conv(info, out_channels)
    budget = vector_registers(info) - SLACK
    assert plan.registers <= budget and plan.lanes == info.vector_bytes // 4
    vectors = -(-out_channels // plan.lanes)
    assert plan.blocks <= max(1, vectors)
    best = max(b * p for b in range(1, min(MAX_BLOCKS, vectors) + 1)
               for p in range(1, MAX_PIXELS + 1)
               if FloatConvPlan(plan.lanes, b, p).registers <= budget)
    assert plan.blocks * plan.pixels == best


@settings(max_examples=8, deadline=None)
@given(pool_cases(), seeds, st.sampled_from(["f32", "i8", "i32"]), st.sampled_from(["max", "avg"]),
       st.booleans(), st.integers(0, 1))
def test_pool2d_compiled(case, seed, elem, kind, include_pad, extra_bottom):
    n, h, w, c = (case[k] for k in "nhwc")
    (kh, kw), (sh, sw), (ph, pw) = case["k"], case["s"], case["p"]
    pb = min(ph + extra_bottom, kh - 1)  # asymmetric padding too
    oh = (h + ph + pb - kh) // sh + 1
    ow = (w + 2 * pw - kw) // sw + 1
    out_elem = elem if kind == "max" else "f32"
    flag = ", count_include_pad" if include_pad and kind == "avg" else ""
    body = (
        f"  %0 = bnn.pool2d %x {{kind = \"{kind}\", kernel = array<i64: {kh}, {kw}>, strides = "
        f"array<i64: {sh}, {sw}>, padding = array<i64: {ph}, {pb}, {pw}, {pw}>{flag}}} : "
        f"tensor<{n}x{h}x{w}x{c}x{elem}> -> tensor<{n}x{oh}x{ow}x{c}x{out_elem}>"
    )
    run_both(func(f"%x: tensor<{n}x{h}x{w}x{c}x{elem}>", f"tensor<{n}x{oh}x{ow}x{c}x{out_elem}>", body, "%0"), seed)


FLOAT_POOL_CASES = [  # (N, H, W, C, kind, kernel, stride, padding [t, b, l, r], count_include_pad)
    (2, 9, 8, 37, "max", 3, 2, (1, 1, 1, 0), False),   # 2 vectors (host) + 5 scalar channels
    (1, 7, 7, 16, "avg", 3, 2, (1, 1, 1, 1), False),   # border windows: the count table
    (1, 6, 5, 20, "avg", 2, 1, (1, 0, 0, 1), True),
]


def float_pool_text(case) -> str:
    n, h, w, c, kind, k, s, pad, include = case
    oh, ow = (h + pad[0] + pad[1] - k) // s + 1, (w + pad[2] + pad[3] - k) // s + 1
    flag = ", count_include_pad" if include else ""
    t_in, t_out = f"tensor<{n}x{h}x{w}x{c}xf32>", f"tensor<{n}x{oh}x{ow}x{c}xf32>"
    body = (f"  %0 = bnn.pool2d %x {{kind = \"{kind}\", kernel = array<i64: {k}, {k}>, strides = "
            f"array<i64: {s}, {s}>, padding = array<i64: {', '.join(map(str, pad))}>{flag}}} : "
            f"{t_in} -> {t_out}")
    return func(f"%x: {t_in}", t_out, body, "%0")


@pytest.mark.parametrize("case", FLOAT_POOL_CASES)
def test_float_pool2d_vectorized_on_host(case):
    """The vector path of float pooling equals the reference bit for bit, with ``-0.0`` / ``+0.0``
    ties, infinities and a NaN in the input."""
    x = rng_of(6).standard_normal(case[:4]).astype(F32)
    x.flat[:6] = [-0.0, 0.0, np.inf, -np.inf, np.nan, -0.0]
    run_both(float_pool_text(case), inputs=[x])


@requires_aarch64
def test_float_pool2d_vectorized_under_qemu():
    run_under_qemu(float_pool_text(FLOAT_POOL_CASES[0]), "@pool", 6)


def test_dense_and_global_avg_pool_compiled():
    rng = rng_of(5)
    w = rng.standard_normal((10, 37)).astype(F32)
    b = rng.standard_normal(10).astype(F32)
    body = (
        f"  %w = {dense_const(w)}\n  %b = {dense_const(b)}\n"
        "  %g = bnn.global_avg_pool %x : tensor<2x3x5x37xf32> -> tensor<2x37xf32>\n"
        "  %0 = bnn.dense %g, %w bias %b : tensor<2x37xf32>, tensor<10x37xf32> bias tensor<10xf32> -> tensor<2x10xf32>\n"
        "  %1 = bnn.global_avg_pool %q : tensor<1x4x4x9xi8> -> tensor<1x9xf32>\n"
        "  %2 = bnn.dense %i, %w : tensor<3x37xi32>, tensor<10x37xf32> -> tensor<3x10xf32>"
    )
    text = func("%x: tensor<2x3x5x37xf32>, %q: tensor<1x4x4x9xi8>, %i: tensor<3x37xi32>",
                "tensor<2x10xf32>, tensor<1x9xf32>, tensor<3x10xf32>", body, "%0, %1, %2")
    run_both(text, seed=1)


@pytest.mark.parametrize("seed", [0, 1])
def test_per_channel_float_ops_compiled(seed):
    rng = rng_of(seed + 10)
    c = 13
    mean, var, gamma, beta = (rng.standard_normal(c).astype(F32) for _ in range(4))
    var = np.abs(var) + F32(0.05)
    scale, bias, slopes = (rng.standard_normal(c).astype(F32) for _ in range(3))
    t = f"tensor<2x3x4x{c}xf32>"
    body = (
        f"  %0 = bnn.batch_norm %x {{mean = array<f32: {f32_list(mean)}>, var = array<f32: {f32_list(var)}>, "
        f"gamma = array<f32: {f32_list(gamma)}>, beta = array<f32: {f32_list(beta)}>, eps = 1.0e-05 : f32}} : {t} -> {t}\n"
        f"  %1 = bnn.affine %0 {{scale = array<f32: {f32_list(scale)}>, bias = array<f32: {f32_list(bias)}>}} : {t} -> {t}\n"
        f"  %2 = bnn.activation %1 {{kind = \"prelu\", slopes = array<f32: {f32_list(slopes)}>}} : {t} -> {t}\n"
        f"  %3 = bnn.activation %x {{kind = \"relu\"}} : {t} -> {t}\n"
        f"  %4 = bnn.activation %x {{kind = \"hardtanh\", min = -0.75 : f32, max = 0.5 : f32}} : {t} -> {t}\n"
        f"  %5 = bnn.add %2, %4 : {t}, {t} -> {t}\n"
        f"  %6 = bnn.affine %x {{scale = array<f32: {', '.join(['0.5'] * c)}>, bias = array<f32: {', '.join(['-1.0'] * c)}>}} : {t} -> {t}"
    )
    x = (rng.standard_normal((2, 3, 4, c)) * 2).astype(F32)
    x.flat[:4] = [0.0, -0.0, 1e-30, -1e-30]
    run_both(func(f"%x: {t}", ", ".join([t] * 6), body, "%0, %1, %2, %3, %4, %5"), inputs=[x])
    run_both(func(f"%x: {t}", t, body, "%6"), inputs=[x])


def test_integer_ops_compiled():
    t8 = "tensor<2x3x5xi8>"
    body = (
        f"  %0 = bnn.add %a, %a : {t8}, {t8} -> tensor<2x3x5xi16>\n"
        f"  %1 = bnn.add %a, %b : {t8}, tensor<2x3x5xi32> -> tensor<2x3x5xi32>\n"
        f"  %2 = bnn.activation %a {{kind = \"relu\"}} : {t8} -> {t8}\n"
        f"  %3 = bnn.activation %b {{kind = \"hardtanh\", min = -100.0 : f32, max = 1.0e+10 : f32}} : tensor<2x3x5xi32> -> tensor<2x3x5xi32>\n"
        f"  %4 = bnn.cast %a : {t8} -> tensor<2x3x5xf32>\n"
        f"  %5 = bnn.cast %b : tensor<2x3x5xi32> -> tensor<2x3x5xf32>\n"
        f"  %6 = bnn.concat %a, %2, %a : {t8}, {t8}, {t8} -> tensor<2x3x15xi8>\n"
        f"  %7 = bnn.transpose %6 {{permutation = array<i64: 2, 0, 1>}} : tensor<2x3x15xi8> -> tensor<15x2x3xi8>\n"
        f"  %8 = bnn.reshape %7 : tensor<15x2x3xi8> -> tensor<5x18xi8>\n"
        f"  %9 = bnn.reshape %b : tensor<2x3x5xi32> -> tensor<6x5xi32>"
    )
    results = ("tensor<2x3x5xi16>, tensor<2x3x5xi32>, tensor<2x3x5xi8>, tensor<2x3x5xi32>, "
               "tensor<2x3x5xf32>, tensor<2x3x5xf32>, tensor<15x2x3xi8>, tensor<5x18xi8>, tensor<6x5xi32>")
    text = func(f"%a: {t8}, %b: tensor<2x3x5xi32>", results, body, "%0, %1, %2, %3, %4, %5, %7, %8, %9")
    rng = rng_of(3)
    a = rng.integers(-128, 128, (2, 3, 5)).astype(np.int8)
    b = rng.integers(-(2**31), 2**31, (2, 3, 5)).astype(np.int32)
    b.flat[:3] = [2**31 - 1, -(2**31), 2**24 + 1]
    run_both(text, inputs=[a, b])


@pytest.mark.parametrize("kind", ["affine", "breakpoints", "table"])
def test_requant8_compiled(kind):
    body_of = {
        "affine": '{kind = "affine", multiplier = array<i64: 3, -5, 2147483647, 0>, '
                  'offset = array<i64: 64, -7, 1073741824, 42>, shift = array<i64: 7, 0, 31, 0>}',
        "breakpoints": '{kind = "breakpoints", base = array<i8: -127, 5, 0, 127>, step = array<i8: 1, -1, 1, -1>, '
                       'breakpoints = array<i32: -3, 0, 2147483647, 4, 4, 9, -100, 2147483647, 2147483647, '
                       '-50, 0, 50>}',
        "table": '{kind = "table", lo = -2 : i64, table = array<i8: 1, 2, 3, 4, -4, -5, -6, -7, 0, 127, -127, 9, '
                 '7, 7, 7, 7>}',
    }
    body = "\n".join(
        f"  %{k} = bnn.requant8 %{v} {body_of[kind]} : tensor<3x5x4x{e}> -> tensor<3x5x4xi8>"
        for k, (v, e) in enumerate([("a", "i8"), ("b", "i16"), ("c", "i32")])
    )
    text = func("%a: tensor<3x5x4xi8>, %b: tensor<3x5x4xi16>, %c: tensor<3x5x4xi32>",
                ", ".join(["tensor<3x5x4xi8>"] * 3), body, "%0, %1, %2")
    rng = rng_of(7)
    a = rng.integers(-128, 128, (3, 5, 4)).astype(np.int8)
    b = rng.integers(-(2**15), 2**15, (3, 5, 4)).astype(np.int16)
    c = rng.integers(-(2**31), 2**31, (3, 5, 4)).astype(np.int32)
    c.flat[:4] = [2**31 - 1, -(2**31), 2**31 - 1, -(2**31)]
    b.flat[:4] = [-3, 0, 4, 9]
    run_both(text, inputs=[a, b, c])


def test_bufferized_segments_keep_the_optional_bias():
    """``bnn-bufferize`` rebuilds ops with optional/variadic operands with correct segments."""
    from bnnmlir.compiler import make_context
    from bnnmlir.dialects.bnn_support import ConcatOp, Conv2dOp
    from bnnmlir.passes.bufferize import BufferizePass

    text = func(
        "%x: tensor<1x3x3x2xf32>, %w: tensor<4x1x1x2xf32>, %b: tensor<4xf32>",
        "tensor<1x3x3x4xf32>, tensor<1x3x3x8xf32>",
        "  %0 = bnn.conv2d %x, %w bias %b {strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, "
        "padding = array<i64: 0, 0, 0, 0>} : tensor<1x3x3x2xf32>, tensor<4x1x1x2xf32> bias tensor<4xf32> -> tensor<1x3x3x4xf32>\n"
        "  %1 = bnn.conv2d %x, %w {strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>, "
        "padding = array<i64: 0, 0, 0, 0>} : tensor<1x3x3x2xf32>, tensor<4x1x1x2xf32> -> tensor<1x3x3x4xf32>\n"
        "  %2 = bnn.concat %0, %1 : tensor<1x3x3x4xf32>, tensor<1x3x3x4xf32> -> tensor<1x3x3x8xf32>",
        "%0, %2",
    )
    module = parse_mlir(text)
    BufferizePass().apply(make_context(), module)
    module.verify()
    convs = [op for op in module.walk() if isinstance(op, Conv2dOp)]
    assert [op.bias is not None for op in convs] == [True, False]
    assert all(op.out is not None and op.result is None for op in convs)
    (cat,) = [op for op in module.walk() if isinstance(op, ConcatOp)]
    assert len(cat.inputs) == 2 and cat.out is not None
