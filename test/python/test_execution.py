"""Whole tensor-level programs through the full pipeline, bit-exact against the numpy reference.

Host: compiled in-process (JIT), sequential and with parallel row loops, over randomized shapes.
aarch64: the object is cross-linked with the runtime and run under qemu-aarch64 on a smaller
sample. The reference (``bnnmlir.reference``) evaluates the same IR with numpy and shares no
code with the lowering.
"""

from __future__ import annotations

import numpy as np
import pytest
import requant_cases
from conftest import requires_aarch64
from hypothesis import given, settings
from hypothesis import strategies as st

from bnnmlir import reference
from bnnmlir.bits import conv_output_size, packed_words
from bnnmlir.compiler import CompileError, compile_module, parse_mlir

TAILS = ("i32", "clip8", "threshold", "fused-clip8", "fused-threshold")
REQUANT_TAILS = tuple(
    f"{fused}requant8-{kind}" for fused in ("", "fused-") for kind in requant_cases.KINDS
)
"""``requant8-<kind>``: a ``bnn.requant8`` after the convolution (fused by the pipeline);
``fused-requant8-<kind>``: written fused, ``output = "requant8"``."""


@st.composite
def conv_programs(draw, max_channels=300, max_size=9, tails=TAILS + REQUANT_TAILS):
    """A program: binarize -> bconv2d (random geometry) -> one of ``tails``: i32 / clip8 /
    threshold / requant8 of each kind, written apart or fused."""
    n = draw(st.integers(1, 3))
    c = draw(st.integers(1, max_channels))
    k = draw(st.sampled_from([1, 3, 5, 7]))
    # Weights are written as IR text: keep them under ~16k values so parsing stays fast.
    o = draw(st.integers(1, max(1, min(19, 16000 // (k * k * c)))))
    s = draw(st.integers(1, 2))
    d = draw(st.integers(1, 2))
    pads = draw(st.tuples(*[st.integers(0, k // 2 + 1)] * 4))
    span = d * (k - 1) + 1
    h = draw(st.integers(max(1, span - pads[0] - pads[1]), max(max_size, span)))
    w = draw(st.integers(max(1, span - pads[2] - pads[3]), max(max_size, span)))
    pad_value = draw(st.sampled_from([-1, 0, 1]))
    tail = draw(st.sampled_from(tails))
    in_type = draw(st.sampled_from(["f32", "i8", "i32"]))
    seed = draw(st.integers(0, 2**31 - 1))
    return make_program(n, h, w, c, o, k, s, d, pads, pad_value, tail, in_type, seed)


def make_program(n, h, w, c, o, k, s, d, pads, pad_value, tail, in_type, seed):
    rng = np.random.default_rng(seed)
    cb, ob = packed_words(c), packed_words(o)
    oh = conv_output_size(h, k, s, d, pads[0], pads[1])
    ow = conv_output_size(w, k, s, d, pads[2], pads[3])
    weights = rng.choice([-1, 1], size=(o, k, k, c))
    dense = "dense<" + np.array2string(weights, separator=",", threshold=10**9, max_line_width=10**9).replace("\n", "") + ">"
    attrs = (
        f"in_channels = {c} : i64, strides = array<i64: {s}, {s}>, dilations = array<i64: {d}, {d}>, "
        f"padding = array<i64: {', '.join(map(str, pads))}>, pad_value = {pad_value} : i64"
    )
    t = rng.integers(-k * k * c // 4 - 1, k * k * c // 4 + 2, size=o)
    dirs = rng.choice([-1, 1], size=o)
    thr = f"thresholds = array<i32: {', '.join(map(str, t))}>, directions = array<i8: {', '.join(map(str, dirs))}>"
    rq = ""
    if "requant8-" in tail:
        rq = requant_cases.attr_text(
            requant_cases.random_requant(rng, tail.rsplit("-", 1)[1], o, k * k * c))
    xt = f"tensor<{n}x{h}x{w}x{c}x{in_type}>"
    pre = f"tensor<{n}x{oh}x{ow}x"
    conv = f"{pre}{o}x"
    body = [
        f"  %w = arith.constant {dense} : tensor<{o}x{k}x{k}x{c}xi8>",
        f"  %p = bnn.binarize %w : tensor<{o}x{k}x{k}x{c}xi8> -> tensor<{o}x{k}x{k}x{cb}xi8>",
        f"  %b = bnn.binarize %x : {xt} -> tensor<{n}x{h}x{w}x{cb}xi8>",
    ]
    conv_in = f"tensor<{n}x{h}x{w}x{cb}xi8>, tensor<{o}x{k}x{k}x{cb}xi8>"
    if tail.startswith("fused-"):
        kind = tail.removeprefix("fused-").split("-")[0]
        params = {"threshold": f", {thr}", "requant8": f", requant = {{{rq}}}"}.get(kind, "")
        extra = f', output = "{kind}"{params}'
        result = f"{pre}{ob}xi8>" if kind == "threshold" else f"{conv}i8>"
        body.append(f"  %r = bnn.bconv2d %b, %p {{{attrs}{extra}}} : {conv_in} -> {result}")
    else:
        body.append(f"  %c = bnn.bconv2d %b, %p {{{attrs}}} : {conv_in} -> {conv}i32>")
        if tail == "clip8":
            result = f"{conv}i8>"
            body.append(f"  %r = bnn.clip8 %c : {conv}i32> -> {result}")
        elif tail == "threshold":
            result = f"{pre}{ob}xi8>"
            body.append(f"  %r = bnn.threshold %c {{{thr}}} : {conv}i32> -> {result}")
        elif tail.startswith("requant8-"):
            result = f"{conv}i8>"
            body.append(f"  %r = bnn.requant8 %c {{{rq}}} : {conv}i32> -> {result}")
        else:
            result = f"{conv}i32>"
    ret = "%c" if tail == "i32" else "%r"
    text = "\n".join(
        [f"func.func @program(%x: {xt}) -> {result} {{", *body, f"  func.return {ret} : {result}", "}"]
    )
    return text


def check(text: str, target: str, threads: int, seed: int = 0) -> None:
    module = parse_mlir(text)
    inputs = reference.random_inputs(module, seed)
    expected = reference.evaluate(module, inputs)
    program = compile_module(parse_mlir(text), target=target, threads=threads)
    got = program(*inputs) if target == "host" else program.run_aarch64(*inputs)
    for g, e in zip(got, expected, strict=True):
        assert g.dtype == e.dtype and g.shape == e.shape
        assert np.array_equal(g, e), f"{np.count_nonzero(g != e)} of {g.size} values differ"


@settings(max_examples=30, deadline=None)
@given(program=conv_programs(), threads=st.sampled_from([1, 2]))
def test_host_programs_are_bit_exact(program, threads):
    check(program, "host", threads)


@requires_aarch64
@settings(max_examples=6, deadline=None)
@given(program=conv_programs(max_channels=140, max_size=7), threads=st.sampled_from([1, 2]))
def test_aarch64_programs_are_bit_exact_under_qemu(program, threads):
    check(program, "aarch64", threads)


@settings(max_examples=18, deadline=None)
@given(program=conv_programs(tails=REQUANT_TAILS), threads=st.sampled_from([1, 2]))
def test_host_requant8_outputs_are_bit_exact(program, threads):
    """bconv2d -> requant8 of every kind, compiled fused, against the reference of the IR as
    written (separate ops, or the fused form)."""
    check(program, "host", threads)


@requires_aarch64
@pytest.mark.parametrize("kind", requant_cases.KINDS)
def test_aarch64_fused_requant8_under_qemu(kind):
    # 37 channels, 5 outputs: one NEON block of 4 plus one, border and interior columns.
    text = make_program(2, 6, 7, 37, 5, 3, 1, 1, (1, 1, 1, 1), -1, f"fused-requant8-{kind}",
                        "i8", 7)
    assert 'output = "requant8"' in text
    check(text, "aarch64", 2, seed=5)


def test_example_network_on_both_targets():
    from importlib import resources

    text = (resources.files("bnnmlir.examples") / "binary_conv_block.mlir").read_text()
    check(text, "host", 2)


@requires_aarch64
def test_example_network_under_qemu():
    from importlib import resources

    text = (resources.files("bnnmlir.examples") / "binary_conv_block.mlir").read_text()
    check(text, "aarch64", 2, seed=3)


def test_a_wrong_bit_is_caught():
    """The comparison above is sensitive: flipping one weight bit changes the result."""
    text = make_program(1, 5, 5, 9, 3, 3, 1, 1, (1, 1, 1, 1), 0, "i32", "f32", 1)
    module = parse_mlir(text)
    inputs = reference.random_inputs(module, 0)
    expected = reference.evaluate(module, inputs)[0]
    first = "dense<[[[[1," if "dense<[[[[1," in text else "dense<[[[[-1,"
    other = "dense<[[[[-1," if first == "dense<[[[[1," else "dense<[[[[1,"
    flipped = text.replace(first, other, 1)
    assert flipped != text
    got = compile_module(parse_mlir(flipped), target="host", threads=1)(*inputs)[0]
    assert not np.array_equal(got, expected)


def test_wrong_inputs_raise_python_errors():
    text = make_program(1, 5, 5, 9, 3, 3, 1, 1, (1, 1, 1, 1), 0, "i32", "f32", 1)
    program = compile_module(parse_mlir(text), target="host", threads=1)
    with pytest.raises(ValueError, match=r"must have shape \[1, 5, 5, 9\]"):
        program(np.zeros((1, 5, 5, 8), np.float32))
    with pytest.raises(TypeError, match="must have dtype float32"):
        program(np.zeros((1, 5, 5, 9), np.float64))
    with pytest.raises(TypeError, match="takes 1 inputs, got 2"):
        program(np.zeros((1, 5, 5, 9), np.float32), np.zeros(1))
    with pytest.raises(TypeError, match="must be a numpy array"):
        program([[1.0]])


def test_invalid_ir_raises_compile_error_with_location():
    with pytest.raises(CompileError, match="<input>:2:19(.|\n)*Operation bnn.bogus is not registered"):
        parse_mlir('func.func @f() {\n  %x = "bnn.bogus"() : () -> i32\n  func.return\n}')
    with pytest.raises(CompileError, match="'bnn.clip8' output must be i8"):
        parse_mlir(
            "func.func @f(%x: tensor<4xi32>) -> tensor<4xi16> {\n"
            "  %y = bnn.clip8 %x : tensor<4xi32> -> tensor<4xi16>\n"
            "  func.return %y : tensor<4xi16>\n}"
        )


@pytest.mark.parametrize("target", ["host", pytest.param("aarch64", marks=requires_aarch64)])
def test_float_clip8_rounds_half_to_even_and_saturates(target):
    text = (
        "func.func @f(%x: tensor<16xf32>) -> tensor<16xi8> {\n"
        "  %y = bnn.clip8 %x : tensor<16xf32> -> tensor<16xi8>\n"
        "  func.return %y : tensor<16xi8>\n}"
    )
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5, 127.5, -127.5, 1e9, -1e9, -0.0,
                  0.49999997, 3.7, -3.2, 126.49], np.float32)
    program = compile_module(parse_mlir(text), target=target, threads=1)
    got = program(x)[0] if target == "host" else program.run_aarch64(x)[0]
    assert got.tolist() == [0, 2, 2, 0, -2, -2, 126, 127, -127, 127, -127, 0, 0, 4, -3, 126]
