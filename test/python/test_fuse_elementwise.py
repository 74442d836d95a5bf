"""Fused float chains (``bnn-fuse-elementwise``) bit for bit against PyTorch.

* a binary convolution followed by its float glue as Bi-Real-Net writes it: ``int32 -> float``,
  the per-channel ``alpha`` scale, eval BatchNorm, the float residual add and an activation;
  the chain moves into the convolution (``output = "f32"``) unless the ``int32`` result has a
  second use, when it is one ``bnn.elementwise`` with a ``cast``;
* a float chain on its own (``bnn.elementwise``: vectors over channels, scalar tail);
* a float convolution (a stem) followed by BatchNorm and an activation: the chain moves into the
  convolution (``steps``), on the vector loops (constant weights) and the scalar ones.

Shapes are random: channel counts that are not multiples of 8/16, odd sizes, batch 2. Each
output must equal PyTorch's eval-mode ops on the same values exactly (``torch.equal``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from conftest import requires_aarch64

from bnnmlir.bits import pack_bits, packed_words
from bnnmlir.compiler import compile_module, parse_mlir
from bnnmlir.dialects.bnn import BConv2dOp
from bnnmlir.dialects.bnn_support import Conv2dOp, ElementwiseOp
from bnnmlir.reference import evaluate, random_inputs


def _f32(values) -> str:
    return ", ".join(repr(float(v)) for v in np.asarray(values, np.float32))


def _tensor(shape, elem: str = "f32") -> str:
    return f"tensor<{'x'.join(map(str, shape))}x{elem}>"


def _params(rng: np.random.Generator, o: int) -> dict[str, np.ndarray]:
    f = np.float32
    return dict(alpha=(rng.random(o) * 0.02 + 1e-3).astype(f),
                mean=(rng.standard_normal(o) * 0.5).astype(f), var=(rng.random(o) + 0.5).astype(f),
                gamma=(rng.standard_normal(o)).astype(f), beta=(rng.standard_normal(o) * 0.1).astype(f),
                slopes=(rng.random(o) * 0.5).astype(f))


def _glue(case: dict, p: dict, x: str, shape) -> tuple[str, str]:
    """The float ops after ``x`` (``f32``) as tensor-level IR: scale (the bias ``-0.0`` adds
    nothing), BatchNorm, residual add, activation; returns (text, last value)."""
    t = _tensor(shape)
    lines = [
        f"%s = bnn.affine {x} {{scale = array<f32: {_f32(p['alpha'])}>, "
        f"bias = array<f32: {_f32(-np.zeros_like(p['alpha']))}>}} : {t} -> {t}",
        f"%b = bnn.batch_norm %s {{mean = array<f32: {_f32(p['mean'])}>, "
        f"var = array<f32: {_f32(p['var'])}>, gamma = array<f32: {_f32(p['gamma'])}>, "
        f"beta = array<f32: {_f32(p['beta'])}>, eps = 1.0e-5 : f32}} : {t} -> {t}",
    ]
    last = "%b"
    if case["residual"]:
        lines.append(f"%y = bnn.add %r, %b : {t}, {t} -> {t}")
        last = "%y"
    act = case["act"]
    if act == "relu":
        lines.append(f'%z = bnn.activation {last} {{kind = "relu"}} : {t} -> {t}')
    elif act == "hardtanh":
        lines.append(f'%z = bnn.activation {last} {{kind = "hardtanh", min = -1.0 : f32, '
                     f"max = 1.0 : f32}} : {t} -> {t}")
    elif act == "prelu":
        lines.append(f'%z = bnn.activation {last} {{kind = "prelu", '
                     f"slopes = array<f32: {_f32(p['slopes'])}>}} : {t} -> {t}")
    if act != "none":
        last = "%z"
    return "\n  ".join(lines), last


def _torch_glue(case: dict, p: dict, v: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """The same glue in PyTorch on NCHW tensors (eval mode)."""
    t = {k: torch.from_numpy(a) for k, a in p.items()}
    v = v * t["alpha"].view(1, -1, 1, 1)
    v = F.batch_norm(v, t["mean"], t["var"], t["gamma"], t["beta"], False, 0.0, 1e-5)
    if case["residual"]:
        v = r + v
    if case["act"] == "relu":
        v = F.relu(v)
    elif case["act"] == "hardtanh":
        v = F.hardtanh(v)
    elif case["act"] == "prelu":
        v = F.prelu(v, t["slopes"])
    return v


def _assert_bits(got: np.ndarray, want: torch.Tensor) -> None:
    """``got`` (NHWC) has the bits of ``want`` (NCHW): ``-0.0`` is not ``+0.0``."""
    expected = np.ascontiguousarray(want.permute(0, 2, 3, 1).numpy())
    assert got.dtype == np.float32 and np.array_equal(got.view(np.uint32), expected.view(np.uint32))


@st.composite
def conv_cases(draw):
    return dict(n=draw(st.integers(1, 2)), h=draw(st.integers(3, 7)), w=draw(st.integers(3, 8)),
                c=draw(st.sampled_from([3, 8, 13, 37])),
                o=draw(st.sampled_from([1, 5, 16, 17, 33, 70])),
                k=draw(st.sampled_from([1, 3])), s=draw(st.sampled_from([1, 2])),
                residual=draw(st.booleans()),
                act=draw(st.sampled_from(["none", "relu", "hardtanh", "prelu"])),
                shared=draw(st.sampled_from([False, False, True])))


def _conv_module(case: dict, w_packed: np.ndarray, p: dict) -> tuple[str, tuple]:
    n, h, wd, c, o, k, s = (case[key] for key in ("n", "h", "w", "c", "o", "k", "s"))
    pad = k // 2
    oh, ow = (h + 2 * pad - k) // s + 1, (wd + 2 * pad - k) // s + 1
    words = packed_words(c)
    xt, wt = _tensor((n, h, wd, words), "i8"), _tensor((o, k, k, words), "i8")
    at, ot = _tensor((n, oh, ow, o), "i32"), _tensor((n, oh, ow, o))
    glue, last = _glue(case, p, "%c", (n, oh, ow, o))
    results = f"{last}, %a" if case["shared"] else last
    types = f"{ot}, {at}" if case["shared"] else ot
    text = (f"func.func @chain(%x: {xt}, %r: {ot}) -> ({types}) {{\n"
            f"  %w = arith.constant dense<{w_packed.tolist()}> : {wt}\n"
            f"  %a = bnn.bconv2d %x, %w {{in_channels = {c} : i64, strides = array<i64: {s}, "
            f"{s}>, dilations = array<i64: 1, 1>, padding = array<i64: {pad}, {pad}, {pad}, "
            f"{pad}>, pad_value = 0 : i64}} : {xt}, {wt} -> {at}\n"
            f"  %c = bnn.cast %a : {at} -> {ot}\n  {glue}\n"
            f"  func.return {results} : {types}\n}}\n")
    return text, (n, oh, ow, o)


@settings(max_examples=14, deadline=None)
@given(conv_cases(), st.integers(0, 2**32 - 1))
def test_binary_conv_glue_equals_pytorch(case, seed):
    rng = np.random.default_rng(seed)
    n, h, wd, c, o, k = (case[key] for key in ("n", "h", "w", "c", "o", "k"))
    x = rng.choice(np.array([-1, 1], np.int8), size=(n, h, wd, c))
    w = rng.choice(np.array([-1, 1], np.int8), size=(o, k, k, c))
    p = _params(rng, o)
    text, out_shape = _conv_module(case, pack_bits(w).view(np.int8), p)
    r = rng.standard_normal(out_shape).astype(np.float32)
    program = compile_module(parse_mlir(text), target="host", threads=1)
    ops = list(program.mlir_module("optimized").walk())
    fused = [op for op in ops if isinstance(op, BConv2dOp) and op.output_kind == "f32"]
    chains = [op for op in ops if isinstance(op, ElementwiseOp)]
    assert (len(fused), len(chains)) == ((0, 1) if case["shared"] else (1, 0))
    got = program(pack_bits(x).view(np.int8), r)[0]
    # PyTorch: the convolution of +-1 values is an exact integer sum in float32 (|acc| <= 333).
    acc = F.conv2d(torch.from_numpy(x).permute(0, 3, 1, 2).float(),
                   torch.from_numpy(w).permute(0, 3, 1, 2).float(), stride=case["s"],
                   padding=k // 2)
    want = _torch_glue(case, p, acc, torch.from_numpy(r).permute(0, 3, 1, 2))
    _assert_bits(got, want)


@settings(max_examples=10, deadline=None)
@given(st.integers(1, 2), st.integers(1, 5), st.integers(1, 7),
       st.sampled_from([1, 3, 8, 15, 16, 17, 31, 37, 64, 70]),
       st.sampled_from(["none", "relu", "hardtanh", "prelu"]), st.booleans(),
       st.integers(0, 2**32 - 1))
def test_float_chain_equals_pytorch(n, h, w, c, act, residual, seed):
    rng = np.random.default_rng(seed)
    case = dict(act=act, residual=residual)
    p = _params(rng, c)
    shape = (n, h, w, c)
    t = _tensor(shape)
    glue, last = _glue(case, p, "%x", shape)
    text = (f"func.func @chain(%x: {t}, %r: {t}) -> {t} {{\n  {glue}\n"
            f"  func.return {last} : {t}\n}}\n")
    program = compile_module(parse_mlir(text), target="host", threads=1)
    assert [op for op in program.mlir_module("optimized").walk() if isinstance(op, ElementwiseOp)]
    x = (rng.standard_normal(shape) * 50).astype(np.float32)
    x.flat[0] = -0.0
    r = rng.standard_normal(shape).astype(np.float32)
    got = program(x, r)[0]
    want = _torch_glue(case, p, torch.from_numpy(x).permute(0, 3, 1, 2),
                       torch.from_numpy(r).permute(0, 3, 1, 2))
    _assert_bits(got, want)


def _float_conv_module(case: dict, w: np.ndarray, p: dict, constant: bool) -> str:
    """A float convolution (weights a constant, or an argument: the vector and the scalar
    loops) followed by the glue of :func:`_glue`."""
    n, h, wd, c, o, k, s = (case[key] for key in ("n", "h", "w", "c", "o", "k", "s"))
    pad = k // 2
    oh, ow = (h + 2 * pad - k) // s + 1, (wd + 2 * pad - k) // s + 1
    xt, wt, ot = _tensor((n, h, wd, c)), _tensor((o, k, k, c)), _tensor((n, oh, ow, o))
    glue, last = _glue(case, p, "%a", (n, oh, ow, o))
    weights = f"  %w = arith.constant dense<{w.tolist()}> : {wt}\n" if constant else ""
    w_arg = "" if constant else f", %w: {wt}"
    return (f"func.func @stem(%x: {xt}, %r: {ot}{w_arg}) -> {ot} {{\n{weights}"
            f"  %a = bnn.conv2d %x, %w {{strides = array<i64: {s}, {s}>, dilations = array<i64: "
            f"1, 1>, padding = array<i64: {pad}, {pad}, {pad}, {pad}>}} : {xt}, {wt} -> {ot}\n"
            f"  {glue}\n  func.return {last} : {ot}\n}}\n")


def _small_integer_conv(case: dict, rng: np.random.Generator):
    """Inputs and weights in ``{-3..3}``: every partial sum is a small integer, exact in float32
    in any order, so PyTorch's convolution and ours agree exactly before the glue."""
    n, h, wd, c, o, k = (case[key] for key in ("n", "h", "w", "c", "o", "k"))
    x = rng.integers(-3, 4, size=(n, h, wd, c)).astype(np.float32)
    w = rng.integers(-3, 4, size=(o, k, k, c)).astype(np.float32)
    return x, w


@settings(max_examples=10, deadline=None)
@given(conv_cases(), st.booleans(), st.integers(0, 2**32 - 1))
def test_float_conv_glue_equals_pytorch(case, constant, seed):
    """A float stem (convolution, BatchNorm, activation) with its chain fused into the
    convolution equals PyTorch's eval-mode ops bit for bit (exact convolution sums)."""
    rng = np.random.default_rng(seed)
    x, w = _small_integer_conv(case, rng)
    p = _params(rng, case["o"])
    text = _float_conv_module(case, w, p, constant)
    program = compile_module(parse_mlir(text), target="host", threads=1)
    fused = [op for op in program.mlir_module("optimized").walk()
             if isinstance(op, Conv2dOp) and op.steps is not None]
    assert len(fused) == 1
    pad, s = case["k"] // 2, case["s"]
    acc = F.conv2d(torch.from_numpy(x).permute(0, 3, 1, 2), torch.from_numpy(w).permute(0, 3, 1, 2),
                   stride=s, padding=pad)
    r = rng.standard_normal(tuple(acc.permute(0, 2, 3, 1).shape)).astype(np.float32)
    got = program(x, r, *([] if constant else [w]))[0]
    _assert_bits(got, _torch_glue(case, p, acc, torch.from_numpy(r).permute(0, 3, 1, 2)))


@settings(max_examples=10, deadline=None)
@given(conv_cases(), st.booleans(), st.integers(0, 2**32 - 1))
def test_float_conv_chain_equals_the_reference(case, constant, seed):
    """Random float data (rounding in every step): the fused program equals the reference
    interpreter on the unfused ops bit for bit (fused multiply-add sums, then the chain)."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((case["o"], case["k"], case["k"], case["c"])).astype(np.float32)
    text = _float_conv_module(case, w, _params(rng, case["o"]), constant)
    arrays = random_inputs(parse_mlir(text), seed=seed % 1000)
    want = evaluate(parse_mlir(text), arrays)[0]
    got = compile_module(parse_mlir(text), target="host", threads=1)(*arrays)[0]
    assert np.array_equal(got.view(np.uint32), np.ascontiguousarray(want).view(np.uint32))


@requires_aarch64
def test_float_conv_chain_under_qemu():
    """The NEON vector path of the fused float convolution (4 lanes, a scalar tail)."""
    case = dict(n=2, h=7, w=9, c=3, o=18, k=3, s=2, residual=False, act="prelu", shared=False)
    rng = np.random.default_rng(7)
    w = rng.standard_normal((18, 3, 3, 3)).astype(np.float32)
    text = _float_conv_module(case, w, _params(rng, 18), True)
    arrays = random_inputs(parse_mlir(text), seed=7)
    want = evaluate(parse_mlir(text), arrays)[0]
    program = compile_module(parse_mlir(text), target="aarch64")
    got = program.run_aarch64(*arrays)[0]
    assert np.array_equal(got.view(np.uint32), np.ascontiguousarray(want).view(np.uint32))
