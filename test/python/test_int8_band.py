"""The band layout of integer convolutions with few input channels (passes/loops/int8_band.py).

(a) The plan: the cost model takes the band for the 7x7 3-channel stem and not for a wide
    3x3 layer; the re-laid weights count every weight once; the chunk shuffle network puts
    every band byte where the layout says.
(b) Compiled code with the band forced (``COST_MODEL = False``) on awkward shapes, bit for bit
    against the reference: channels not multiples of 4 or 16, odd sizes, stride 2, dilation
    (rows), asymmetric padding, batch 2, pixel tiles with tails, extreme values; the i32 output
    and the fused requant8 (affine with i32 and i64 arrays, table); ``host`` (vpdpbusd) and
    ``host-novnni`` (vpmaddwd).
"""

from __future__ import annotations

from contextlib import contextmanager
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bnnmlir.compiler import compile_module, parse_mlir
from bnnmlir.dialects.bnn_support import Conv2dOp
from bnnmlir.passes.loops import int8_band
from bnnmlir.passes.loops.int8_band import VECTOR, band_weights, chunk_network, plan_band
from bnnmlir.passes.loops.int8_conv import PATHS, Geometry, dot_path, plan_int8
from bnnmlir.reference import evaluate
from requant_cases import attr_text, random_requant
from bnnmlir.reference import support as ref
from bnnmlir.target import get_target

HOST_TARGETS = [t for t in ("host", "host-novnni")
                if (p := dot_path(get_target(t))) is not None and p.lanes * 4 == VECTOR]
needs_avx512 = pytest.mark.skipif(not HOST_TARGETS, reason="no AVX-512 integer dot path")


def _geometry(n, h, w, c, o, k, s, d, pad) -> Geometry:
    kh, kw = k
    oh = (h + pad[0] + pad[1] - d[0] * (kh - 1) - 1) // s[0] + 1
    ow = (w + pad[2] + pad[3] - d[1] * (kw - 1) - 1) // s[1] + 1
    return Geometry(None, None, n, h, w, c, o, kh, kw, oh, ow, s, d, (pad[0], pad[2]),  # type: ignore[arg-type]
                    None, None)  # type: ignore[arg-type]


def _plans(path: str, geo: Geometry):
    tiles = plan_int8(PATHS[path], geo.o, geo.kw, geo.kh, geo.c, geo.dilation[1], geo.ow)
    return tiles, plan_band(tiles, geo)


# ---------------------------------------------------------------------------------------------
# (a) The plan
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["vnni", "pmaddwd"])
def test_cost_model_takes_the_band_for_the_stem_only(path):
    stem = _geometry(1, 224, 224, 3, 64, (7, 7), (2, 2), (1, 1), (3, 3, 3, 3))
    tiles, band = _plans(path, stem)
    assert band is not None and band.groups == -(-147 // PATHS[path].group)
    assert band.groups < tiles.segments * tiles.groups
    wide = _geometry(1, 56, 56, 64, 64, (3, 3), (1, 1), (1, 1), (1, 1, 1, 1))
    assert _plans(path, wide)[1] is None
    dilated = _geometry(1, 30, 30, 3, 64, (3, 3), (1, 1), (1, 2), (1, 1, 1, 1))
    assert _plans(path, dilated)[1] is None  # dilation_w != 1: no contiguous window
    assert _plans("sdot", stem)[1] is None  # 16-byte vectors: row segments


@pytest.mark.parametrize("shape", [(64, 7, 7, 3), (5, 3, 3, 1), (17, 2, 5, 5), (33, 3, 1, 2)])
def test_band_weights_count_each_weight_once(shape):
    o, kh, kw, c = shape
    geo = _geometry(1, 20, 20, c, o, (kh, kw), (1, 1), (1, 1), (0, 0, 0, 0))
    with _forced():
        tiles, band = _plans("vnni", geo)
    assert band is not None
    w = np.random.default_rng(0).integers(-128, 128, (o, kh, kw, c))
    g, lanes = band.path.group, band.path.lanes
    wr = band_weights(band, w).reshape(tiles.blocks, band.groups, lanes, g)
    per_channel = wr.transpose(0, 2, 1, 3).reshape(tiles.blocks * lanes, band.groups * g)
    # band byte t = (kw*KH + kh)*C + c of the window holds w[o, kh, kw, c]; bytes >= K are 0
    assert np.array_equal(per_channel[:o, : kh * kw * c], w.transpose(0, 2, 1, 3).reshape(o, -1))
    assert not per_channel[o:].any() and not per_channel[:, kh * kw * c:].any()


@pytest.mark.parametrize("kh,c", [(7, 3), (3, 3), (5, 1), (2, 5), (3, 16), (4, 64), (1, 7)])
def test_chunk_network_places_every_band_byte(kh, c):
    """Evaluate the shuffle network on symbolic bytes: band byte ``(col*KH + r)*C + ch`` of a
    chunk must be row ``r``'s byte ``col*C + ch``."""
    chunk = VECTOR // c
    nodes, outputs = chunk_network(kh, c, chunk)
    values = [[(r, b) for b in range(VECTOR)] for r in range(kh)]
    for node in nodes:
        values.append([None if lane is None else values[lane[0]][lane[1]] for lane in node])
    band = [byte for index in outputs for byte in values[index]]
    for col in range(chunk):
        for r in range(kh):
            for ch in range(c):
                assert band[(col * kh + r) * c + ch] == (r, col * c + ch)
    if kh >= 4 and c == 3:
        assert sum(map(int8_band.shuffles, nodes)) < len(outputs) * (kh - 1)


# ---------------------------------------------------------------------------------------------
# (b) Compiled code
# ---------------------------------------------------------------------------------------------


@contextmanager
def _forced():
    with mock.patch.object(int8_band, "COST_MODEL", False):
        yield


def _dense(a: np.ndarray) -> str:
    return f"dense<{a.tolist()}> : tensor<{'x'.join(map(str, a.shape))}xi8>".replace(" ", "")


def _breakpoints(rng: np.random.Generator, o: int) -> str:
    """A breakpoints map (no lane-wise form: applied element by element from the scratch buffer)
    whose steps lie where int8 sums of a few dozen products fall (std about 5500 per product)."""
    return attr_text(random_requant(rng, "breakpoints", o, 5500**2 * 50))


def _requant(rng: np.random.Generator, kind: str, o: int) -> str:
    def arr(elem: str, values) -> str:
        return f"array<{elem}: {', '.join(map(str, values))}>"

    if kind == "breakpoints":
        return _breakpoints(rng, o)
    if kind == "table":
        return f'kind = "table", lo = -3 : i64, table = {arr("i8", rng.integers(-127, 128, o * 7))}'
    big = 2**15 if kind == "affine64" else 40
    return (f'kind = "affine", multiplier = {arr("i64", rng.integers(-big, big, o))}, '
            f'offset = {arr("i64", rng.integers(-(2**20), 2**20, o))}, '
            f'shift = {arr("i64", rng.integers(6, 20, o))}')


def _text(x_shape, w: np.ndarray, s, d, pad, rq: str | None) -> str:
    n, h, wd, c = x_shape
    o, kh, kw, _ = w.shape
    oh = (h + pad[0] + pad[1] - d[0] * (kh - 1) - 1) // s[0] + 1
    ow = (wd + pad[2] + pad[3] - d[1] * (kw - 1) - 1) // s[1] + 1
    xt, at = f"tensor<{n}x{h}x{wd}x{c}xi8>", f"tensor<{n}x{oh}x{ow}x{o}xi32>"
    conv = (f"bnn.conv2d %x, %w {{strides = array<i64: {s[0]}, {s[1]}>, dilations = array<i64: "
            f"{d[0]}, {d[1]}>, padding = array<i64: {', '.join(map(str, pad))}>}} : {xt}, "
            f"tensor<{o}x{kh}x{kw}x{c}xi8> -> {at}")
    body, rt, result = f"  %y = {conv}\n", at, "%y"
    if rq is not None:
        rt = at.replace("xi32>", "xi8>")
        body += f"  %q = bnn.requant8 %y {{{rq}}} : {at} -> {rt}\n"
        result = "%q"
    return (f"func.func @kernel(%x: {xt}) -> {rt} {{\n  %w = arith.constant {_dense(w)}\n"
            f"{body}  func.return {result} : {rt}\n}}\n")


def _values(rng: np.random.Generator, shape, extreme: str) -> np.ndarray:
    if extreme in ("min", "max"):
        return np.full(shape, -128 if extreme == "min" else 127, dtype=np.int8)
    if extreme == "both":
        return rng.choice(np.array([-128, 127], dtype=np.int8), size=shape)
    return rng.integers(-128, 128, shape).astype(np.int8)


@st.composite
def band_cases(draw):
    c = draw(st.sampled_from([1, 2, 3, 5, 7, 16]))
    o = draw(st.sampled_from([1, 5, 16, 17, 33, 64, 70]))
    k = draw(st.sampled_from([(7, 7), (3, 3), (5, 3), (2, 5), (1, 3)]))
    s = draw(st.sampled_from([(1, 1), (2, 2), (2, 1), (1, 2)]))
    d = (draw(st.sampled_from([1, 2])), 1)
    pad = tuple(draw(st.integers(0, 3)) for _ in range(4))
    n = draw(st.integers(1, 2))
    h_min = max(1, (k[0] - 1) * d[0] + 1 - pad[0] - pad[1])
    w_min = max(1, k[1] - pad[2] - pad[3])
    h = draw(st.integers(h_min, h_min + 6))
    w = draw(st.integers(w_min, w_min + 40))
    extreme = draw(st.sampled_from(["random", "random", "min", "max", "both"]))
    rq = draw(st.sampled_from([None, None, "affine", "affine64", "table", "breakpoints"]))
    return dict(n=n, h=h, w=w, c=c, o=o, k=k, s=s, d=d, pad=pad, extreme=extreme, rq=rq)


def _check(case: dict, seed: int, target: str) -> None:
    rng = np.random.default_rng(seed)
    x = _values(rng, (case["n"], case["h"], case["w"], case["c"]), case["extreme"])
    w = _values(rng, (case["o"], *case["k"], case["c"]), case["extreme"])
    rq = None if case["rq"] is None else _requant(rng, case["rq"], case["o"])
    text = _text(x.shape, w, case["s"], case["d"], case["pad"], rq)
    with _forced():
        program = compile_module(parse_mlir(text), target=target, threads=1, cache=False)
        conv = [op for op in program.mlir_module("optimized").walk() if isinstance(op, Conv2dOp)]
        if conv and conv[0].weight.type.get_shape()[1:3] != (1, 1):  # type: ignore[attr-defined]
            assert "llvm.stacksave" in str(program.mlir_module("loops"))  # the band path ran
    got = program(x)[0]
    if rq is None:
        want = ref.conv2d_int(x, w, case["s"], case["d"], case["pad"])
        assert got.dtype == np.int32
    else:
        want = evaluate(parse_mlir(text), [x])[0]
        assert got.dtype == np.int8
    assert np.array_equal(got, want)


@needs_avx512
@pytest.mark.parametrize("target", HOST_TARGETS)
@settings(max_examples=30, deadline=None)
@given(band_cases(), st.integers(0, 2**32 - 1))
def test_band_bit_exact(target, case, seed):
    _check(case, seed, target)


@needs_avx512
@pytest.mark.parametrize("target", HOST_TARGETS)
def test_tiny_band_forwarded_to_the_kernel_compiles(target):
    """A band of one chunk (a 1x3x1x1 input) whose stores LLVM forwards to the kernel's loads:
    without the barrier after the bias XOR, LLVM 22's x86-64 instruction selection never returns
    on the resulting broadcast of an XOR (the compile hangs)."""
    case = dict(n=1, h=3, w=1, c=1, o=64, k=(1, 3), s=(2, 2), d=(1, 1), pad=(1, 0, 1, 3),
                extreme="random", rq="table")
    _check(case, 931723725, target)


@needs_avx512
@pytest.mark.parametrize("target", HOST_TARGETS)
@pytest.mark.parametrize("rq", [None, "affine", "affine64"])
def test_stem_shape_bit_exact(target, rq):
    """The stem itself (224x224x3 -> 112x112x64, 7x7 s2 p3), taken by the cost model: 18 tiles of
    6 pixels and a tail of 4 per row, borders on all sides, extreme values in a corner."""
    rng = np.random.default_rng(7)
    x = rng.integers(-128, 128, (1, 224, 224, 3)).astype(np.int8)
    x[0, :9, :9] = -128
    x[0, -9:, -9:] = 127
    w = rng.integers(-128, 128, (64, 7, 7, 3)).astype(np.int8)
    rq_text = None if rq is None else _requant(rng, rq, 64)
    text = _text(x.shape, w, (2, 2), (1, 1), (3, 3, 3, 3), rq_text)
    program = compile_module(parse_mlir(text), target=target, threads=2, cache=False)
    assert "llvm.stacksave" in str(program.mlir_module("loops"))
    want = (ref.conv2d_int(x, w, (2, 2), (1, 1), (3, 3, 3, 3)) if rq is None
            else evaluate(parse_mlir(text), [x])[0])
    assert np.array_equal(program(x)[0], want)
