"""The vector kernels of integer ``bnn.conv2d`` / ``bnn.dense`` (passes/loops/int8_conv.py).

(a) The plan: groups and overlaps of a segment, the re-laid weights count every weight once.
(b) Compiled code, bit for bit against the independent reference (:mod:`bnnmlir.reference`), on
    awkward shapes and extreme values (-128 / 127 everywhere), interior rows with and without
    their own unchecked copy of the kernel, for every instruction path: the
    host with VNNI (``host``) and with it switched off (``host-novnni``: ``vpmaddwd``), aarch64
    with ``smull`` + ``sadalp`` (``aarch64``) and with ``sdot`` (``aarch64-dotprod``) under qemu.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ROW_CODES, layer_code

from bnnmlir.backend import cross
from bnnmlir.compiler import compile_module, parse_mlir
from bnnmlir.passes.loops.int8_conv import PATHS, dot_path, plan_int8, relaid_weights
from bnnmlir.reference import support as ref
from bnnmlir.target import get_target

HOST_TARGETS = [t for t in ("host", "host-novnni") if dot_path(get_target(t)) is not None]
ARM_TARGETS = ["aarch64", "aarch64-dotprod"]
needs_qemu = pytest.mark.skipif(not cross.available(), reason="qemu-aarch64 / cross gcc missing")


# ---------------------------------------------------------------------------------------------
# (a) The plan
# ---------------------------------------------------------------------------------------------


def test_stem_plan_reads_kernel_rows_of_21_bytes():
    plan = plan_int8(PATHS["vnni"], 64, 7, 7, 3, 1, 112)
    assert (plan.segments, plan.run, plan.full_groups, plan.groups) == (7, 21, 5, 6)
    assert [plan.offset(q) for q in range(6)] == [0, 4, 8, 12, 16, 17]
    assert plan.counted_from(5) == 3  # bytes 17..19 were counted by group 4
    assert plan.tile_blocks == 4 and plan.tile_pixels * 4 + 4 <= 29


@pytest.mark.parametrize("path", sorted(PATHS))
@pytest.mark.parametrize("shape", [(5, 7, 7, 3, 1), (17, 1, 1, 33, 1), (3, 3, 3, 2, 2), (1, 1, 1, 1, 1)])
def test_relaid_weights_count_each_weight_once(path, shape):
    o, kh, kw, c, dw = shape
    plan = plan_int8(PATHS[path], o, kw, kh, c, dw, 4)
    w = np.random.default_rng(0).integers(-128, 128, (o, kh, kw, c))
    wr = relaid_weights(plan, w).reshape(plan.blocks, plan.segments, plan.groups,
                                         plan.path.lanes, plan.path.group)
    per_channel = wr.transpose(0, 3, 1, 2, 4).reshape(plan.blocks * plan.path.lanes, -1)
    assert np.array_equal(per_channel[:o].sum(axis=1), w.reshape(o, -1).sum(axis=1))
    assert not per_channel[o:].any()
    assert sorted(np.abs(per_channel[:o]).sum(axis=1)) == sorted(np.abs(w).reshape(o, -1).sum(axis=1))


# ---------------------------------------------------------------------------------------------
# (b) Compiled code
# ---------------------------------------------------------------------------------------------


def _dense_attr(a: np.ndarray) -> str:
    shape = "x".join(map(str, a.shape))
    return f"dense<{a.tolist()}> : tensor<{shape}xi8>".replace(" ", "")


def _conv_text(x_shape, w: np.ndarray, s, d, pad) -> tuple[str, tuple[int, ...]]:
    n, h, wd, c = x_shape
    o, kh, kw, _ = w.shape
    oh = (h + pad[0] + pad[1] - d[0] * (kh - 1) - 1) // s[0] + 1
    ow = (wd + pad[2] + pad[3] - d[1] * (kw - 1) - 1) // s[1] + 1
    xt, ot = f"tensor<{n}x{h}x{wd}x{c}xi8>", f"tensor<{n}x{oh}x{ow}x{o}xi32>"
    text = (
        f"func.func @kernel(%x: {xt}) -> {ot} {{\n  %w = arith.constant {_dense_attr(w)}\n"
        f"  %y = bnn.conv2d %x, %w {{strides = array<i64: {s[0]}, {s[1]}>, dilations = array<i64: "
        f"{d[0]}, {d[1]}>, padding = array<i64: {', '.join(map(str, pad))}>}} : {xt}, "
        f"tensor<{o}x{kh}x{kw}x{c}xi8> -> {ot}\n  func.return %y : {ot}\n}}\n"
    )
    return text, (n, oh, ow, o)


def _dense_text(x_shape, w: np.ndarray) -> str:
    (n, c), o = x_shape, w.shape[0]
    xt, ot = f"tensor<{n}x{c}xi8>", f"tensor<{n}x{o}xi32>"
    return (f"func.func @kernel(%x: {xt}) -> {ot} {{\n  %w = arith.constant {_dense_attr(w)}\n"
            f"  %y = bnn.dense %x, %w : {xt}, tensor<{o}x{c}xi8> -> {ot}\n"
            f"  func.return %y : {ot}\n}}\n")


def _run(text: str, x: np.ndarray, target: str) -> np.ndarray:
    program = compile_module(parse_mlir(text), target=target, threads=1)
    if get_target(target).is_host:
        return program(x)[0]
    _, outputs, arena_bytes = program._call_arguments([x])
    return cross.run_aarch64(program.object_code(), program.signature.entry, [x],
                             outputs, arena_bytes)[0]


def _values(rng: np.random.Generator, shape, extreme: str) -> np.ndarray:
    if extreme == "min":
        return np.full(shape, -128, dtype=np.int8)
    if extreme == "max":
        return np.full(shape, 127, dtype=np.int8)
    if extreme == "both":
        return rng.choice(np.array([-128, 127], dtype=np.int8), size=shape)
    return rng.integers(-128, 128, shape).astype(np.int8)


@st.composite
def conv_cases(draw):
    c = draw(st.sampled_from([1, 2, 3, 4, 5, 17, 33, 64]))
    o = draw(st.sampled_from([1, 3, 5, 16, 17, 33, 64, 70]))
    k = draw(st.sampled_from([(1, 1), (3, 3), (7, 7), (2, 3), (1, 5)]))
    s = draw(st.sampled_from([(1, 1), (2, 2), (1, 2)]))
    d = draw(st.sampled_from([(1, 1), (2, 2), (1, 3)]))
    pad = tuple(draw(st.integers(0, 3)) for _ in range(4))
    n = draw(st.integers(1, 2))
    h_min = max(1, (k[0] - 1) * d[0] + 1 - pad[0] - pad[1])
    w_min = max(1, (k[1] - 1) * d[1] + 1 - pad[2] - pad[3])
    h = draw(st.integers(h_min, max(h_min, 13)))  # a dilated 7x7 kernel needs up to 19 rows
    w = draw(st.integers(w_min, max(w_min, 13)))
    extreme = draw(st.sampled_from(["random", "random", "min", "max", "both"]))
    rows = draw(st.sampled_from(ROW_CODES))
    return dict(n=n, h=h, w=w, c=c, o=o, k=k, s=s, d=d, pad=pad, extreme=extreme, rows=rows)


def _check_conv(case, seed, target):
    rng = np.random.default_rng(seed)
    x = _values(rng, (case["n"], case["h"], case["w"], case["c"]), case["extreme"])
    w = _values(rng, (case["o"], *case["k"], case["c"]), case["extreme"])
    text, _ = _conv_text(x.shape, w, case["s"], case["d"], case["pad"])
    with layer_code(case["rows"]):
        got = _run(text, x, target)
    want = ref.conv2d_int(x, w, case["s"], case["d"], case["pad"])
    assert got.dtype == np.int32 and np.array_equal(got, want)


@pytest.mark.parametrize("target", HOST_TARGETS)
@settings(max_examples=25, deadline=None)
@given(conv_cases(), st.integers(0, 2**32 - 1))
def test_conv_bit_exact_host(target, case, seed):
    _check_conv(case, seed, target)


@needs_qemu
@pytest.mark.parametrize("target", ARM_TARGETS)
@settings(max_examples=6, deadline=None)
@given(conv_cases(), st.integers(0, 2**32 - 1))
def test_conv_bit_exact_aarch64(target, case, seed):
    _check_conv(case, seed, target)


@st.composite
def dense_cases(draw):
    return dict(n=draw(st.integers(1, 5)), c=draw(st.sampled_from([1, 3, 5, 17, 33, 64, 512])),
                o=draw(st.sampled_from([1, 10, 16, 33, 100])),
                extreme=draw(st.sampled_from(["random", "min", "max", "both"])))


def _check_dense(case, seed, target):
    rng = np.random.default_rng(seed)
    x = _values(rng, (case["n"], case["c"]), case["extreme"])
    w = _values(rng, (case["o"], case["c"]), case["extreme"])
    got = _run(_dense_text(x.shape, w), x, target)
    assert np.array_equal(got, ref.dense_int(x, w))


@pytest.mark.parametrize("target", HOST_TARGETS)
@settings(max_examples=15, deadline=None)
@given(dense_cases(), st.integers(0, 2**32 - 1))
def test_dense_bit_exact_host(target, case, seed):
    _check_dense(case, seed, target)


@needs_qemu
@pytest.mark.parametrize("target", ARM_TARGETS)
@settings(max_examples=4, deadline=None)
@given(dense_cases(), st.integers(0, 2**32 - 1))
def test_dense_bit_exact_aarch64(target, case, seed):
    _check_dense(case, seed, target)


@pytest.mark.parametrize("target", HOST_TARGETS)
@pytest.mark.parametrize("xv,wv", [(-128, -128), (127, -128)])
def test_largest_sums_do_not_wrap(target, xv, wv):
    """``|sum| = 128*128*K`` near the ``i32`` limit (the fan-in ``K = 131071`` of the verifier):
    on the VNNI path ``u*w`` partial sums pass ``2**31`` and wrap, the result does not."""
    c = 131071
    x = np.full((1, c), xv, dtype=np.int8)
    w = np.full((2, c), wv, dtype=np.int8)
    w[1, ::2] = -wv - 1 if wv == -128 else -wv
    got = _run(_dense_text(x.shape, w), x, target)
    want = x.astype(np.int64) @ w.astype(np.int64).T
    assert abs(int(want[0, 0])) > 2**31 - 2**25
    assert np.array_equal(got.astype(np.int64), want)
