"""``bnn.quantize`` (float chain + clip8 + layout change in one op): its loops against the
reference bit for bit, over random shapes, permutations and chains, on the host (AVX-512 and
AVX2 vector widths) and under qemu; and ``bnn-fuse-quantize`` end to end from the unfused ops."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from conftest import requires_aarch64

from bnnmlir.compiler import compile_module, parse_mlir
from bnnmlir.reference import evaluate

F32 = np.float32
seeds = st.integers(0, 2**32 - 1)


def _f32s(values) -> str:
    return ", ".join(repr(float(F32(v))) for v in values)


def _step(rng: np.random.Generator, kind: str, width: int) -> str:
    def arr(choices):
        return f"array<f32: {_f32s(rng.choice(choices, width))}>"

    if kind in ("mul", "div"):
        return f'{{kind = "{kind}", values = {arr([0.5, 1.0, 2.0, 64.0, -1.0, 3.3, -0.75])}}}'
    if kind == "add":
        return f'{{kind = "add", values = {arr([0.0, -0.0, 0.5, -0.25, 1.5, 100.0])}}}'
    if kind == "fma":
        return (f'{{kind = "fma", scale = {arr([0.5, 2.0, -3.0, 64.0])}, '
                f'shift = {arr([0.0, 0.5, -1.5, 7.25])}}}')
    if kind == "prelu":
        return f'{{kind = "prelu", values = {arr([0.25, -2.0, 0.0])}}}'
    bound = float(rng.choice([-200.0, -3.5, 0.0, 2.5, 130.0]))
    return f'{{kind = "{kind}", value = {bound!r} : f32}}'


def quantize_text(shape, perm, kinds, seed) -> str:
    rng = np.random.default_rng(seed)
    steps = ", ".join(_step(rng, k, shape[-1]) for k in kinds)
    out = [shape[p] for p in perm]
    t_in = f"tensor<{'x'.join(map(str, shape))}xf32>"
    t_out = f"tensor<{'x'.join(map(str, out))}xi8>"
    return (f"func.func @quant(%x: {t_in}) -> {t_out} {{\n"
            f"  %q = bnn.quantize %x {{steps = [{steps}], permutation = array<i64: "
            f"{', '.join(map(str, perm))}>}} : {t_in} -> {t_out}\n"
            f"  func.return %q : {t_out}\n}}\n")


def quantize_input(shape, seed) -> np.ndarray:
    """Halves (ties of the rounding), values past +-127.5 and ordinary floats."""
    rng = np.random.default_rng(seed + 1)
    halves = rng.integers(-300, 301, shape) / 2
    normal = rng.standard_normal(shape) * 90
    return np.where(rng.random(shape) < 0.5, halves, normal).astype(F32)


@st.composite
def quantize_cases(draw):
    layout = draw(st.sampled_from(["nchw", "nchw", "identity", "random"]))
    if layout == "nchw":
        shape = (draw(st.integers(1, 2)), draw(st.integers(1, 5)), draw(st.integers(1, 4)),
                 draw(st.integers(1, 70)))
        perm = (0, 2, 3, 1)
    else:
        rank = draw(st.integers(1, 4))
        shape = tuple(draw(st.integers(1, 40 if k == rank - 1 else 4)) for k in range(rank))
        perm = tuple(range(rank)) if layout == "identity" else tuple(
            draw(st.permutations(range(rank))))
    kinds = draw(st.lists(st.sampled_from(["mul", "div", "add", "fma", "max", "min", "prelu"]),
                          max_size=3))
    return shape, perm, kinds


def check(shape, perm, kinds, seed, target="host", threads=1) -> None:
    text = quantize_text(shape, perm, kinds, seed)
    x = quantize_input(shape, seed)
    [want] = evaluate(parse_mlir(text), [x])
    program = compile_module(parse_mlir(text), target=target, threads=threads, cache=False)
    [got] = program.run_aarch64(x) if target == "aarch64" else program(x)
    assert got.dtype == np.int8 and got.shape == want.shape
    assert np.array_equal(got, want), (shape, perm, kinds)


@pytest.mark.parametrize("target", ["host", "host-novnni"])
@settings(max_examples=25, deadline=None)
@given(quantize_cases(), seeds)
def test_quantize_bit_exact(target, case, seed):
    check(*case, seed, target)


@requires_aarch64
@settings(max_examples=6, deadline=None)
@given(quantize_cases(), seeds)
def test_quantize_bit_exact_under_qemu(case, seed):
    check(*case, seed, "aarch64")


def test_quantize_split_over_threads():
    """An image large enough to be split over rows by a 2-thread program."""
    check((1, 3, 112, 200), (0, 2, 3, 1), ["mul", "add"], 5, threads=2)


def test_quantize_infinities_saturate():
    text = quantize_text((1, 2, 1, 20), (0, 2, 3, 1), [], 0)
    x = np.full((1, 2, 1, 20), np.inf, F32)
    x[0, 1] = -np.inf
    [got] = compile_module(parse_mlir(text), target="host", cache=False)(x)
    assert (got[0, 0, :, 0] == 127).all() and (got[0, 0, :, 1] == -127).all()


@pytest.mark.parametrize("target", ["host", "host-novnni"])
def test_fused_input_quantization_equals_the_unfused_ops(target):
    """affine + clip8 + NCHW -> NHWC transpose (the importer's input quantization) compile to
    one bnn.quantize and give the reference of the unfused ops bit for bit."""
    w = 37
    scale = _f32s([64.0] * w)
    bias = _f32s([0.5] * w)
    text = (
        "func.func @quant(%x: tensor<2x3x5x37xf32>) -> tensor<2x5x37x3xi8> {\n"
        f"  %a = bnn.affine %x {{scale = array<f32: {scale}>, bias = array<f32: {bias}>}} : "
        "tensor<2x3x5x37xf32> -> tensor<2x3x5x37xf32>\n"
        "  %q = bnn.clip8 %a : tensor<2x3x5x37xf32> -> tensor<2x3x5x37xi8>\n"
        "  %t = bnn.transpose %q {permutation = array<i64: 0, 2, 3, 1>} : "
        "tensor<2x3x5x37xi8> -> tensor<2x5x37x3xi8>\n"
        "  func.return %t : tensor<2x5x37x3xi8>\n}\n")
    x = quantize_input((2, 3, 5, 37), 11) / 64
    [want] = evaluate(parse_mlir(text), [x])
    program = compile_module(parse_mlir(text), target=target, cache=False)
    optimized = program.mlir("optimized")
    assert optimized.count("bnn.quantize") == 1
    assert not any(op in optimized for op in ("bnn.affine", "bnn.clip8", "bnn.transpose"))
    [got] = program(x)
    assert np.array_equal(got, want)
