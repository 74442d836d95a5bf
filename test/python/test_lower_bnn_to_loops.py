"""``lower-bnn-to-loops``: the accumulator-width proof, and the loop nests run bit-exactly.

The loop nests go through ``convert-bnn-to-llvm`` and the host JIT and are compared with
:mod:`bnnmlir.reference`, which convolves the +-1 values directly (no bit tricks) and packs with
``numpy.packbits``. Loops are generated for the host's vector width and for aarch64's (16 bytes),
both executed on the host, so full chunks, tails, peeled chunks and every accumulator layout run.
"""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from conftest import ROW_CODES, layer_code
from requant_cases import KINDS, attr_text, random_requant
from requant_cases import apply as apply_requant
from xdsl.context import Context
from xdsl.dialects import get_all_dialects
from xdsl.dialects.builtin import ModuleOp
from xdsl.parser import Parser
from xdsl.utils.exceptions import PassFailedException

from bnnmlir import reference
from bnnmlir.backend.jit import JitModule
from bnnmlir.dialects import BNN
from bnnmlir.dialects.bnn import NarrowAccOp
from bnnmlir.passes.accumulator_width import AccumulatorPlan, lane_layout, plan_accumulator
from bnnmlir.passes.convert_to_llvm import ConvertBnnToLLVMPass
from bnnmlir.passes.loops.bconv2d import (
    PatchChunks,
    PatchPiece,
    RunChunks,
    chunk_bytes,
    conv_plans,
    interior_range,
    patch_chunks,
    patch_plan,
    patch_width,
    run_chunks,
    transposed_sum_plan,
)
from bnnmlir.passes.lower_bnn_to_loops import LowerBnnToLoopsPass
from bnnmlir.target import get_target

LOOP_TARGETS = ("host", "aarch64")

# ---------------------------------------------------------------------------------------------
# The accumulator-width choice (pure function)
# ---------------------------------------------------------------------------------------------


def test_lane_layouts():
    assert lane_layout(8, 16) == (16, 1)
    assert lane_layout(16, 16) == (8, 2)
    assert lane_layout(16, 1) == (1, 1)
    assert lane_layout(32, 64) == (16, 4)
    assert lane_layout(32, 2) == (1, 2)


@pytest.mark.parametrize("m", [2, 16, 64])
def test_8_bit_lanes_up_to_255(m):
    # S*8 <= 255 <=> S <= 31: 31 steps fit, 32 do not.
    assert plan_accumulator(1, 31, 1, m) == AccumulatorPlan(8, m, 1, 31, "none")
    assert plan_accumulator(1, 1, 31, m).lane_bits == 8
    assert plan_accumulator(2, 16, 1, m) == AccumulatorPlan(16, m // 2, 2, 32, "none")


def test_16_bit_lanes_up_to_65535():
    # G = 2: S*16 <= 65535 <=> S <= 4095.
    assert plan_accumulator(1, 1, 4095, 16) == AccumulatorPlan(16, 8, 2, 4095, "none")
    assert plan_accumulator(3, 3, 455, 16) == AccumulatorPlan(16, 8, 2, 4095, "none")
    # 4096 steps overflow 16 bits: flush after each row of taps (3*456 = 1368 steps).
    assert plan_accumulator(3, 3, 456, 16) == AccumulatorPlan(16, 8, 2, 1368, "row")


def test_16_bit_lanes_of_single_bytes():
    # M = 1: L = G = 1, S*8 <= 65535 <=> S <= 8191.
    assert plan_accumulator(1, 1, 8191, 1) == AccumulatorPlan(16, 1, 1, 8191, "none")
    assert plan_accumulator(1, 2, 4096, 1) == AccumulatorPlan(16, 1, 1, 4096, "tap")


def test_flush_per_tap_then_32_bit_lanes():
    # A row of 2 taps of 4095 chunks is too long; one tap fits.
    assert plan_accumulator(1, 2, 4095, 16) == AccumulatorPlan(16, 8, 2, 4095, "tap")
    # One tap of 4096 chunks does not fit 16-bit lanes at all.
    assert plan_accumulator(1, 1, 4096, 16) == AccumulatorPlan(32, 4, 4, 4096, "none")


def test_every_plan_is_accepted_by_the_verifier_bound():
    for kh, kw, q, m in [
        (1, 1, 1, 1),
        (3, 3, 4, 16),
        (7, 7, 90, 64),
        (1, 5, 1000, 2),
        (2, 2, 5000, 8),
    ]:
        p = plan_accumulator(kh, kw, q, m)
        assert p.lanes * p.bytes_per_lane == m
        assert p.chain_steps <= NarrowAccOp.max_exact_steps(p.lane_bits, p.bytes_per_lane)


def test_plan_rejects_i32_overflow_and_bad_widths():
    with pytest.raises(ValueError, match="overflows i32"):
        plan_accumulator(7, 7, 2**20, 64)
    with pytest.raises(ValueError, match="power of two"):
        plan_accumulator(1, 1, 1, 12)


def test_chunk_bytes():
    assert [chunk_bytes(w, 16) for w in (1, 2, 3, 5, 16, 17, 38)] == [1, 2, 2, 4, 16, 16, 16]
    assert chunk_bytes(38, 64) == 32
    assert chunk_bytes(64, 64) == 64


# ---------------------------------------------------------------------------------------------
# Compile and run
# ---------------------------------------------------------------------------------------------


def _context() -> Context:
    ctx = Context()
    for name, factory in get_all_dialects().items():
        ctx.register_dialect(name, factory)
    ctx.load_dialect(BNN)
    return ctx


def lower_to_loops(source: str, target: str = "host", parallel: bool = False) -> ModuleOp:
    ctx = _context()
    module = Parser(ctx, source).parse_module()
    LowerBnnToLoopsPass(target=target, parallel=parallel).apply(ctx, module)
    module.verify()
    return module


def run(
    source: str,
    args: list[np.ndarray],
    target: str = "host",
    parallel: bool = False,
    threads: int = 1,
) -> None:
    """Lower ``@f`` in ``source`` to loops (for ``target``'s vector width), JIT it for the host
    and call it on ``args`` (outputs are written in place)."""
    module = lower_to_loops(source, target, parallel)
    assert parallel == any(op.name == "scf.parallel" for op in module.walk())
    ConvertBnnToLLVMPass(target="host").apply(_context(), module)
    jit = JitModule(module)
    f = jit.ctypes_function("f", [ctypes.c_void_p] * len(args))
    assert jit.runtime is not None
    jit.runtime.bnnmlir_set_num_threads(threads)
    try:
        f(*(a.ctypes.data for a in args))
    finally:
        jit.runtime.bnnmlir_set_num_threads(1)


def _memref(shape: tuple[int, ...], elem: str) -> str:
    return "memref<" + "".join(f"{d}x" for d in shape) + elem + ">"


def _pm1(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.choice(np.array([-1, 1], dtype=np.int8), size=shape)


def run_bconv2d(
    n,
    h,
    w,
    c,
    o,
    kh,
    kw,
    strides,
    dilations,
    padding,
    pad_value,
    seed,
    target="host",
    parallel=False,
    threads=1,
    rows="unchecked",
):
    rng = np.random.default_rng(seed)
    x = _pm1(rng, (n, h, w, c))
    wt = _pm1(rng, (o, kh, kw, c))
    expected = reference.bconv2d(x, wt, strides, dilations, padding, pad_value)
    xp = np.ascontiguousarray(reference.pack(x).view(np.int8))
    wp = np.ascontiguousarray(reference.pack(wt).view(np.int8))
    out = np.full(expected.shape, 0x5A5A5A5A, dtype=np.int32)
    t_x, t_w, t_o = _memref(xp.shape, "i8"), _memref(wp.shape, "i8"), _memref(out.shape, "i32")
    source = f"""
    func.func @f(%x: {t_x}, %w: {t_w}, %o: {t_o}) {{
      bnn.bconv2d %x, %w into %o {{in_channels = {c} : i64,
        strides = array<i64: {strides[0]}, {strides[1]}>,
        dilations = array<i64: {dilations[0]}, {dilations[1]}>,
        padding = array<i64: {", ".join(map(str, padding))}>, pad_value = {pad_value} : i64}}
        : {t_x}, {t_w}, {t_o}
      func.return
    }}"""
    with layer_code(rows):
        run(source, [xp, wp, out], target, parallel, threads)
    np.testing.assert_array_equal(out, expected)


@st.composite
def conv_cases(draw):
    kh, kw = draw(st.sampled_from([1, 3, 5, 7])), draw(st.sampled_from([1, 3, 5, 7]))
    dh, dw = draw(st.sampled_from([1, 2])), draw(st.sampled_from([1, 2]))
    sh, sw = draw(st.sampled_from([1, 2])), draw(st.sampled_from([1, 2]))
    padding = tuple(draw(st.integers(0, k - 1)) for k in (kh, kh, kw, kw))
    span_h, span_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    h = max(1, span_h - padding[0] - padding[1]) + draw(st.integers(0, 4))
    w = max(1, span_w - padding[2] - padding[3]) + draw(st.integers(0, 4))
    return {
        "n": draw(st.integers(1, 3)),
        "h": h,
        "w": w,
        "c": draw(
            st.one_of(st.integers(1, 300), st.sampled_from([8, 32, 64, 65, 127, 128, 129, 257]))
        ),
        "o": draw(st.integers(1, 4)),
        "kh": kh,
        "kw": kw,
        "strides": (sh, sw),
        "dilations": (dh, dw),
        "padding": padding,
        "pad_value": draw(st.sampled_from([-1, 0, 1])),
        "seed": draw(st.integers(0, 2**31)),
        "target": draw(st.sampled_from(LOOP_TARGETS)),
        "rows": draw(st.sampled_from(ROW_CODES)),
    }


@settings(max_examples=25, deadline=None)
@given(conv_cases())
def test_bconv2d_matches_reference(case):
    run_bconv2d(**case)


@pytest.mark.parametrize("target", LOOP_TARGETS)
@pytest.mark.parametrize("pad_value", [-1, 0, 1])
@pytest.mark.parametrize("c", [5, 13, 128, 130])
def test_bconv2d_padding_of_partial_and_full_words(target, pad_value, c):
    # 13 channels over 2 bytes (aarch64: M = 2, no tail: the padded last chunk is peeled);
    # 130 over 17 bytes (tail of 1 on aarch64, of 17 on the host).
    run_bconv2d(2, 5, 4, c, 3, 3, 3, (1, 2), (1, 1), (2, 1, 1, 2), pad_value, seed=c, target=target)


@pytest.mark.parametrize("threads", [1, 2])
def test_bconv2d_parallel_rows(threads):
    # 111 output channels: 8.8 M binary MACs, above the size that is split over threads.
    run_bconv2d(
        3,
        7,
        6,
        70,
        111,
        3,
        3,
        (1, 1),
        (2, 1),
        (2, 2, 1, 1),
        0,
        seed=3,
        target="aarch64",
        parallel=True,
        threads=threads,
    )


@pytest.mark.parametrize(
    "c, kh, kw, lane_bits, flush, pad_value",
    [
        (8 * 16 * 3, 5, 3, 16, "none", -1),  # aarch64: Q = 3, S = 45
        (8 * 16 * 500, 3, 3, 16, "row", -1),  # Q = 500, S = 4500: rows of 1500 steps
        (8 * 16 * 500 - 3, 3, 3, 16, "row", 0),
        (8 * 16 * 2500 + 9, 1, 2, 16, "tap", 0),  # Q = 2501, a row of 5002 steps is too long
        (8 * 16 * 2500 + 9, 1, 2, 16, "tap", -1),
        (8 * 16 * 4100, 1, 1, 32, "none", 1),  # one tap of 4100 chunks
    ],
)
def test_bconv2d_wide_accumulators_and_flushes(c, kh, kw, lane_bits, flush, pad_value):
    words = -(-c // 8)
    q = -(-words // 16)
    plan = plan_accumulator(kh, kw, q, 16)
    assert (plan.lane_bits, plan.flush) == (lane_bits, flush)
    run_bconv2d(
        1,
        kh + 1,
        kw,
        c,
        2,
        kh,
        kw,
        (1, 1),
        (1, 1),
        (1, 0, 0, 0),
        pad_value,
        seed=c,
        target="aarch64",
    )


# Summing the lanes of several outputs together ----------------------------------------------------


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 8])
@pytest.mark.parametrize("lanes", [1, 2, 4, 8, 32])
@pytest.mark.parametrize("segments", [1, 2, 4])
def test_transposed_sum_plan_only_adds_lanes_of_one_output(count, lanes, segments):
    """Replays the plan on lanes tagged with their output (None: a zero lane) and on random
    values: every add joins lanes of one output, and each output ends with its exact sum."""
    if lanes % segments:
        return
    rng = np.random.default_rng(count * 100 + lanes * 10 + segments)
    seg = lanes // segments
    width = 1 << (count - 1).bit_length()
    owner = [[v * segments + p // seg if v < count else None for p in range(lanes)]
             for v in range(width)]
    value = [[int(rng.integers(0, 1000)) if v < count else 0 for _ in range(lanes)]
             for v in range(width)]
    expected = [sum(value[i // segments][(i % segments) * seg:(i % segments + 1) * seg])
                for i in range(count * segments)]
    levels, vectors, per_vector = transposed_sum_plan(count, lanes, segments)
    for level in levels:
        new_owner, new_value = [], []
        for s in level:
            both_o, both_v = owner[s.lhs] + owner[s.rhs], value[s.lhs] + value[s.rhs]
            lo_o, hi_o = [both_o[i] for i in s.lo], [both_o[i] for i in s.hi]
            assert all(a == b or b is None and a is None for a, b in zip(lo_o, hi_o))
            new_owner.append(lo_o)
            new_value.append([both_v[i] + both_v[j] for i, j in zip(s.lo, s.hi)])
        owner, value = new_owner, new_value
    assert len(owner) == vectors
    for i in range(count * segments):
        assert owner[i // per_vector][i % per_vector] == i
        assert value[i // per_vector][i % per_vector] == expected[i]


def run_bconv2d_constant_weights(h, w, c, o, k, stride, pad, pad_value, seed, target="host",
                                 kernel="blocked"):
    """A convolution whose weights are a constant ``memref.global`` (what the packed weights of a
    compiled network are), compiled with ``kernel`` (``KERNEL_CODES``); returns the lowered
    module."""
    rng = np.random.default_rng(seed)
    x = _pm1(rng, (1, h, w, c))
    wt = _pm1(rng, (o, k, k, c))
    padding = (pad,) * 4
    expected = reference.bconv2d(x, wt, (stride, stride), (1, 1), padding, pad_value)
    xp = np.ascontiguousarray(reference.pack(x).view(np.int8))
    wp = np.ascontiguousarray(reference.pack(wt).view(np.int8))
    out = np.full(expected.shape, 0x5A5A5A5A, dtype=np.int32)
    t_x, t_w, t_o = _memref(xp.shape, "i8"), _memref(wp.shape, "i8"), _memref(out.shape, "i32")
    dense = str(wp.tolist())
    tensor = "tensor<" + "".join(f"{d}x" for d in wp.shape) + "i8>"
    source = f"""
    "memref.global"() <{{sym_name = "weights", type = {t_w},
      initial_value = dense<{dense}> : {tensor}, sym_visibility = "private", constant}}> : () -> ()
    func.func @f(%x: {t_x}, %o: {t_o}) {{
      %w = memref.get_global @weights : {t_w}
      bnn.bconv2d %x, %w into %o {{in_channels = {c} : i64,
        strides = array<i64: {stride}, {stride}>, dilations = array<i64: 1, 1>,
        padding = array<i64: {pad}, {pad}, {pad}, {pad}>, pad_value = {pad_value} : i64}}
        : {t_x}, {t_w}, {t_o}
      func.return
    }}"""
    with layer_code(kernel=kernel):
        if target != "host":  # run under qemu by test_bconv_blocks.py
            return lower_to_loops(source, target)
        run(source, [xp, out], target)
        np.testing.assert_array_equal(out, expected)
        return lower_to_loops(source, target)


@pytest.mark.parametrize("target", LOOP_TARGETS)
@pytest.mark.parametrize("o, blocked", [(1000, False), (2047, False), (2048, True)])
def test_only_layers_of_a_million_macs_get_the_blocked_kernel(target, o, blocked):
    """A 512-input binary dense of 1000 outputs (0.5 M MACs, Bi-Real-Net-18's head) runs the
    compact per-pixel code, one of 2048 outputs (2**20 MACs, ``MIN_BLOCKED_MACS``) the
    register-blocked kernel; both exact."""
    module = run_bconv2d_constant_weights(1, 1, 512, o, 1, 1, 0, 0, seed=o, target=target,
                                          kernel="compact")
    names = [op.sym_name.data for op in module.ops if op.name == "memref.global"]
    assert any(n.startswith("__bnn_wvectors") for n in names) == blocked


@pytest.mark.parametrize(
    "h, w, c, o, k, stride, pad, pad_value",
    [
        (6, 7, 64, 4, 3, 1, 1, 0),  # stage1-like: 72-byte windows, 5 vectors of 16
        (5, 5, 64, 9, 3, 1, 1, -1),  # 2 blocks of 4 and one channel left over
        (6, 6, 37, 6, 3, 2, 1, 1),  # 45-byte windows, 3 vectors of 16
        (4, 4, 128, 8, 3, 1, 0, 0),  # every position interior, 9 vectors of 16
        (5, 5, 12, 5, 2, 1, 0, 1),  # 8-byte windows: 8-bit lanes
    ],
)
def test_bconv2d_blocked_constant_weights(h, w, c, o, k, stride, pad, pad_value):
    """Host: the interior outputs of a block of 4 channels in one accumulator read from the
    re-laid constant weights, summed by segments (random weights, so any mixing of lanes of
    different outputs changes the result)."""
    module = run_bconv2d_constant_weights(h, w, c, o, k, stride, pad, pad_value, seed=c + o)
    names = [op.sym_name.data for op in module.ops if op.name == "memref.global"]
    assert any(n.startswith("__bnn_wblocks_") for n in names)
    assert any(op.name == "vector.shuffle" for op in module.walk())


def test_bconv2d_constant_weights_aarch64_relaid_for_neon():
    """aarch64: the weights re-laid for the NEON register-blocked kernel, never the host's
    4-channel blocks."""
    module = run_bconv2d_constant_weights(5, 5, 64, 4, 3, 1, 1, 0, seed=1, target="aarch64")
    names = [op.sym_name.data for op in module.ops if op.name == "memref.global"]
    assert any(n.startswith("__bnn_wvectors") for n in names)
    assert not any(n.startswith("__bnn_wblocks") for n in names)


# Element-wise ops --------------------------------------------------------------------------------


@settings(max_examples=15, deadline=None)
@given(
    st.lists(st.integers(1, 4), min_size=0, max_size=3),
    st.integers(1, 40),
    st.sampled_from(["f32", "i8", "i16", "i32"]),
    st.integers(0, 2**31),
)
def test_binarize_matches_reference(lead, c, elem, seed):
    rng = np.random.default_rng(seed)
    shape = (*lead, c)
    if elem == "f32":
        x = rng.standard_normal(shape).astype(np.float32)
        x.flat[:: max(1, x.size // 3)] = -0.0  # -0.0 binarizes to +1
    else:
        dtype = {"i8": np.int8, "i16": np.int16, "i32": np.int32}[elem]
        info = np.iinfo(dtype)
        x = rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
        x.flat[:: max(1, x.size // 4)] = 0
    expected = reference.binarize(x).view(np.int8)
    out = np.full(expected.shape, 0x55, dtype=np.int8)
    t_x, t_o = _memref(x.shape, elem), _memref(out.shape, "i8")
    source = f"""
    func.func @f(%x: {t_x}, %o: {t_o}) {{
      bnn.binarize %x into %o : {t_x}, {t_o}
      func.return
    }}"""
    run(source, [np.ascontiguousarray(x), out])
    np.testing.assert_array_equal(out, expected)


@settings(max_examples=15, deadline=None)
@given(
    st.lists(st.integers(1, 3), min_size=0, max_size=2),
    st.integers(1, 30),
    st.sampled_from(["i8", "i16", "i32"]),
    st.booleans(),
    st.integers(0, 2**31),
)
def test_threshold_matches_reference(lead, c, elem, mixed, seed):
    rng = np.random.default_rng(seed)
    dtype = {"i8": np.int8, "i16": np.int16, "i32": np.int32}[elem]
    x = rng.integers(-130, 130, size=(*lead, c)).clip(np.iinfo(dtype).min, np.iinfo(dtype).max)
    x = x.astype(dtype)
    t = rng.integers(-128, 128, size=c).astype(np.int32)
    t[:: max(1, c // 3)] = x.reshape(-1, c)[0, :: max(1, c // 3)]  # ties x == t
    t[-1] = -(2**31)  # a constant channel
    d = (
        rng.choice([-1, 1], size=c).astype(np.int8)
        if mixed
        else np.full(c, rng.choice([-1, 1]), np.int8)
    )
    expected = reference.pack(reference.threshold(x, t, d)).view(np.int8)
    out = np.full(expected.shape, 0x55, dtype=np.int8)
    t_x, t_o = _memref(x.shape, elem), _memref(out.shape, "i8")
    source = f"""
    func.func @f(%x: {t_x}, %o: {t_o}) {{
      bnn.threshold %x into %o {{thresholds = array<i32: {", ".join(map(str, t))}>,
        directions = array<i8: {", ".join(map(str, d))}>}} : {t_x}, {t_o}
      func.return
    }}"""
    run(source, [np.ascontiguousarray(x), out])
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("elem, dtype", [("i16", np.int16), ("i32", np.int32)])
def test_clip8_matches_reference(elem, dtype):
    info = np.iinfo(dtype)
    x = np.array(
        [
            [info.min, -129, -128, -127, -126, -1, 0, 1, 126, 127],
            [128, 129, info.max, 5, -5, 0, 0, 0, 0, 0],
        ],
        dtype=dtype,
    )
    expected = reference.clip8(x)
    out = np.zeros(x.shape, dtype=np.int8)
    t_x, t_o = _memref(x.shape, elem), _memref(out.shape, "i8")
    source = f"""
    func.func @f(%x: {t_x}, %o: {t_o}) {{
      bnn.clip8 %x into %o : {t_x}, {t_o}
      func.return
    }}"""
    run(source, [x, out])
    np.testing.assert_array_equal(out, expected)


# Rejected input ------------------------------------------------------------------------------


def test_tensor_form_is_rejected():
    source = """
    func.func @f(%x: tensor<2x9xf32>) -> tensor<2x2xi8> {
      %0 = bnn.binarize %x : tensor<2x9xf32> -> tensor<2x2xi8>
      func.return %0 : tensor<2x2xi8>
    }"""
    with pytest.raises(
        PassFailedException, match=r"'bnn.binarize' in @f: expected the buffer form"
    ):
        lower_to_loops(source)


def test_unknown_target_is_rejected():
    with pytest.raises(PassFailedException, match="unknown target 'riscv'"):
        lower_to_loops("func.func @f() {\n func.return\n}", target="riscv")


# Interior / border split and kernel-row runs -----------------------------------------------------


def test_interior_range():
    # 5 wide, 3 taps, pad 1: columns 1..3 read only in-range taps.
    assert interior_range(5, 5, 3, 1, 1, 1) == (1, 4)
    # No padding: every output is interior.
    assert interior_range(6, 4, 3, 1, 1, 0) == (0, 4)
    # One column wide input, pad 1 each side: no interior.
    assert interior_range(1, 1, 3, 1, 1, 1) == (1, 1)
    # Stride 2, pad 1: ow*2 - 1 >= 0 from ow = 1; ow*2 - 1 + 2 <= 6 up to ow = 2.
    assert interior_range(7, 4, 3, 2, 1, 1) == (1, 3)
    # Dilation 2 over 5 columns, pad 2: only ow = 2 reads 0, 2, 4.
    assert interior_range(5, 5, 3, 1, 2, 2) == (2, 3)


def test_run_chunks_overlap_the_last_vector():
    assert run_chunks(24, 64) == RunChunks(24, 16, (0, 8), 8)
    assert run_chunks(48, 16) == RunChunks(48, 16, (0, 16, 32), 0)
    assert run_chunks(15, 16) == RunChunks(15, 8, (0, 7), 1)
    assert run_chunks(1, 16) == RunChunks(1, 1, (0,), 0)


def test_plan_with_16_bit_lanes_at_least():
    assert plan_accumulator(3, 1, 2, 16, 16) == AccumulatorPlan(16, 8, 2, 6, "none")
    assert plan_accumulator(3, 1, 2, 16) == AccumulatorPlan(8, 16, 1, 6, "none")
    with pytest.raises(ValueError, match="min_lane_bits"):
        plan_accumulator(3, 1, 2, 16, 32)


def _conv_op(source: str, target: str):
    ctx = _context()
    module = Parser(ctx, source).parse_module()
    return next(op for op in module.walk() if op.name == "bnn.bconv2d")


def test_runs_chain_length_is_max_steps():
    # 64 channels, 3x3 (stage-1 shape): a kernel row is a run of 24 bytes.
    source = """
    func.func @f(%x: memref<1x6x6x8xi8>, %w: memref<8x3x3x8xi8>, %o: memref<1x6x6x8xi32>) {
      bnn.bconv2d %x, %w into %o {in_channels = 64 : i64, strides = array<i64: 1, 1>,
        dilations = array<i64: 1, 1>, padding = array<i64: 1, 1, 1, 1>, pad_value = 0 : i64}
        : memref<1x6x6x8xi8>, memref<8x3x3x8xi8>, memref<1x6x6x8xi32>
      func.return
    }"""
    for target, m, steps, lane_bits in (("host", 16, 6, 16), ("aarch64", 16, 6, 16)):
        tap_plan, run_plan = conv_plans(_conv_op(source, target), get_target(target))
        assert run_plan is not None
        window_plan = patch_plan(_conv_op(source, target), get_target(target))
        assert (window_plan is not None) == get_target(target).masked_loads
        assert (run_plan.chain_steps, run_plan.lane_bits, run_plan.flush) == (steps, lane_bits, "none")
        assert run_plan.lanes * run_plan.bytes_per_lane == m
        with layer_code("unchecked"):  # the window path runs on unchecked rows only
            module = lower_to_loops(source, target)
        found = {(op.lhs.type.get_shape()[0], op.max_steps.value.data)
                 for op in module.walk() if isinstance(op, NarrowAccOp)}
        # Interior columns: 16-byte vectors, 2 per kernel row; border: 8-byte taps, 9 per output.
        expected = {(16, steps), (8, tap_plan.chain_steps)}
        if get_target(target).masked_loads:
            # Interior positions: the 72-byte window as 5 vectors of 16 bytes.
            expected.add((16, 5))
        assert found == expected
        assert tap_plan.chain_steps == 9


def test_patch_width_weighs_steps_against_the_lane_sum():
    # ceil(T / M) + PATCH_SUM_COST[M]: 72 bytes -> 5 + 0 (16) < 3 + 6 (32) < 2 + 9 (64).
    assert patch_width(72, 64) == 16
    # 288 bytes -> 18 (16), 9 + 6 (32), 5 + 9 (64).
    assert patch_width(288, 64) == 64
    assert patch_width(288, 32) == 32
    assert patch_width(288, 16) == 16
    # Short windows: T rounded up to a power of two.
    assert [patch_width(t, 64) for t in (1, 3, 8, 9, 16)] == [1, 4, 8, 16, 16]


def test_patch_chunks_split_the_window_by_kernel_row():
    # Stage-3 shape: 3 rows of 96 bytes in 64-byte vectors; row 1 straddles vectors 1 and 2.
    assert patch_chunks(3, 96, 64) == PatchChunks(288, 96, 64, (
        (PatchPiece(0, 0, 64),),
        (PatchPiece(0, 0, 32), PatchPiece(1, 32, 32)),
        (PatchPiece(1, 0, 64),),
        (PatchPiece(2, 0, 64),),
        (PatchPiece(2, 0, 32),),
    ))
    assert [patch_chunks(3, 96, 64).valid(j) for j in range(5)] == [64, 64, 64, 64, 32]
    # A window shorter than a vector rounds M up to a power of two; lanes past T stay 0.
    chunks = patch_chunks(1, 5, 64)
    assert (chunks.m, len(chunks.pieces), chunks.valid(0)) == (8, 1, 5)
    # Every window byte lies in exactly one piece, at lane t - j*M of vector j.
    for kh, run, width in ((3, 24, 64), (5, 15, 64), (7, 3, 16), (3, 192, 64), (1, 1, 64)):
        chunks = patch_chunks(kh, run, width)
        covered = [j * chunks.m + piece.first + i
                   for j, pieces in enumerate(chunks.pieces) for piece in pieces
                   for i in range(piece.lanes)]
        assert covered == list(range(kh * run))
        assert all(piece.row == (j * chunks.m + piece.first) // run
                   for j, pieces in enumerate(chunks.pieces) for piece in pieces)


def test_patches_only_where_masked_loads_are_cheap():
    source = """
    func.func @f(%x: memref<2x5x5x5xi8>, %w: memref<3x3x3x5xi8>, %o: memref<2x3x3x3xi32>) {
      bnn.bconv2d %x, %w into %o {in_channels = 37 : i64, strides = array<i64: 1, 1>,
        dilations = array<i64: 1, 1>, padding = array<i64: 0, 0, 0, 0>, pad_value = 1 : i64}
        : memref<2x5x5x5xi8>, memref<3x3x3x5xi8>, memref<2x3x3x3xi32>
      func.return
    }"""
    for target in LOOP_TARGETS:
        masked = sum(op.name == "vector.maskedload" for op in lower_to_loops(source, target).walk())
        # Host: the 45-byte window is 3 vectors of 16 bytes filled by 5 row pieces, and the
        # last 13 weight bytes of each of the 3 channels (one block) are one masked load.
        assert masked == (5 + 3 if get_target(target).masked_loads else 0), target


@pytest.mark.parametrize("target", LOOP_TARGETS)
@pytest.mark.parametrize(
    "h, w, c, o, k, strides, dilations, padding",
    [
        (1, 1, 64, 5, 3, (1, 1), (1, 1), (1, 1, 1, 1)),  # no interior at all
        (3, 3, 64, 6, 3, (1, 1), (1, 1), (1, 1, 1, 1)),  # one interior row and column
        (5, 9, 37, 9, 3, (1, 1), (1, 1), (1, 1, 1, 1)),  # runs of 15 bytes: masked overlap
        (7, 8, 130, 4, 3, (2, 2), (1, 1), (1, 1, 1, 1)),  # stride 2
        (8, 9, 24, 7, 3, (1, 1), (2, 2), (2, 2, 2, 2)),  # dilation 2: per-tap interior
        (6, 7, 16, 3, 3, (1, 1), (2, 1), (2, 0, 1, 1)),  # dilation 2 in rows only: runs
        (6, 10, 8, 9, 5, (1, 2), (1, 1), (0, 2, 2, 0)),  # one-sided padding, 5x5
        (5, 5, 8, 3, 1, (1, 1), (1, 1), (0, 0, 0, 0)),  # 1x1: a run is one tap
        (9, 4, 3, 5, 3, (1, 1), (1, 1), (0, 0, 0, 0)),  # 1-byte taps: a 9-byte window
        (9, 9, 37, 6, 5, (2, 1), (2, 1), (1, 1, 1, 1)),  # window of 2 vectors, a row split
        (6, 6, 520, 2, 3, (1, 1), (1, 1), (1, 1, 1, 1)),  # 65-byte taps: 10 vectors
    ],
)
@pytest.mark.parametrize("pad_value", [-1, 0, 1])
def test_bconv2d_interior_and_border_paths(target, h, w, c, o, k, strides, dilations, padding,
                                           pad_value):
    run_bconv2d(2, h, w, c, o, k, k, strides, dilations, padding, pad_value, seed=h * w + c,
                target=target)


@pytest.mark.parametrize("kind", ["clip8", "threshold", *(f"requant8-{k}" for k in KINDS)])
@pytest.mark.parametrize("o", [3, 8, 13])
@pytest.mark.parametrize("target, const_weights",
                         [("host", False), ("host", True), ("aarch64", False)])
def test_fused_outputs_in_channel_blocks(kind, o, target, const_weights):
    # O = 3, 8, 13: fewer channels than a block, whole blocks, and blocks plus a rest; threshold
    # bits of a word come from several blocks. Constant weights: the host's full blocks read the
    # re-laid copy at interior positions.
    rng = np.random.default_rng(o)
    n, h, w, c, k = 1, 5, 6, 37, 3
    x = _pm1(rng, (n, h, w, c))
    wt = _pm1(rng, (o, k, k, c))
    conv = reference.bconv2d(x, wt, (1, 1), (1, 1), (1, 1, 1, 1), -1)
    t = rng.integers(-20, 20, size=o).astype(np.int32)
    d = rng.choice([-1, 1], size=o).astype(np.int8)
    if kind == "clip8":
        expected = reference.clip8(conv)
        extra = 'output = "clip8"'
        out = np.zeros(expected.shape, dtype=np.int8)
    elif kind.startswith("requant8-"):
        rq = random_requant(rng, kind.removeprefix("requant8-"), o, k * k * c)
        expected = apply_requant(conv, rq)
        extra = f'output = "requant8", requant = {{{attr_text(rq)}}}'
        out = np.full(expected.shape, 0x55, dtype=np.int8)
    else:
        expected = reference.pack(reference.threshold(conv, t, d)).view(np.int8)
        extra = (f'output = "threshold", thresholds = array<i32: {", ".join(map(str, t))}>, '
                 f'directions = array<i8: {", ".join(map(str, d))}>')
        out = np.full(expected.shape, 0x55, dtype=np.int8)
    xp = np.ascontiguousarray(reference.pack(x).view(np.int8))
    wp = np.ascontiguousarray(reference.pack(wt).view(np.int8))
    t_x, t_w, t_o = _memref(xp.shape, "i8"), _memref(wp.shape, "i8"), _memref(out.shape, "i8")
    conv_op = f"""bnn.bconv2d %x, %w into %o {{in_channels = {c} : i64,
        strides = array<i64: 1, 1>, dilations = array<i64: 1, 1>,
        padding = array<i64: 1, 1, 1, 1>, pad_value = -1 : i64, {extra}}} : {t_x}, {t_w}, {t_o}"""
    if const_weights:
        tensor = "tensor<" + "".join(f"{d}x" for d in wp.shape) + "i8>"
        source = f"""
        "memref.global"() <{{sym_name = "weights", type = {t_w},
          initial_value = dense<{wp.tolist()}> : {tensor}, sym_visibility = "private",
          constant}}> : () -> ()
        func.func @f(%x: {t_x}, %o: {t_o}) {{
          %w = memref.get_global @weights : {t_w}
          {conv_op}
          func.return
        }}"""
        args = [xp, out]
    else:
        source = f"""
        func.func @f(%x: {t_x}, %w: {t_w}, %o: {t_o}) {{
          {conv_op}
          func.return
        }}"""
        args = [xp, wp, out]
    run(source, args, target)
    np.testing.assert_array_equal(out, expected)
    if const_weights and o >= 4:
        module = lower_to_loops(source, target)
        assert any(op.name == "memref.global" and op.sym_name.data.startswith("__bnn_wblocks_")
                   for op in module.ops)
