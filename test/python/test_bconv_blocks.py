"""The register-blocked binary convolution kernel (passes/loops/bconv_plan.py, bconv_blocks.py).

(a) The plan: chunks cover every window byte once, the re-laid weights hold every weight once,
    the border correction is the padded output, the cost model keeps to the registers.
(b) Compiled code, bit for bit against the reference, on awkward shapes (channels not a multiple
    of 8/16/64, widths not a multiple of the pixel block, stride 2, dilation, batch 2, every pad
    value) with the block size forced to each choice the cost model can make, on the host and
    on aarch64 under qemu.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from xdsl.dialects import arith, func
from xdsl.dialects.builtin import ModuleOp, TensorType, i8, i32
from xdsl.ir import Block, Region

from bnnmlir import reference
from bnnmlir.backend import cross
from bnnmlir.bits import conv_output_size, packed_words
from bnnmlir.compiler import compile_module
from bnnmlir.dialects.bnn import BConv2dOp
from bnnmlir.ir_utils import numpy_to_dense
from bnnmlir.passes.loops.bconv2d import (
    MAX_CHANNEL_PARTS,
    SPLIT_THREADS,
    ChannelParts,
    channel_parts,
    chunk_loads,
)
from bnnmlir.passes.loops.bconv_blocks import correction_table, relaid_weights
from bnnmlir.passes.loops.bconv_plan import (
    FORCE_ENV,
    MAX_PIXELS,
    REGISTERS,
    SLACK,
    plan_blocks,
    row_cost,
    window_chunks,
)
from bnnmlir.target import get_target
from conftest import ROW_CODES, layer_code, splitting_small_layers

needs_qemu = pytest.mark.skipif(not cross.available(), reason="qemu-aarch64 / cross gcc missing")


# ---------------------------------------------------------------------------------------------
# (a) The plan
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("masked,m", [(True, 4), (False, 16), (True, 16)])
@pytest.mark.parametrize("kh,run", [(3, 96), (3, 24), (1, 16), (3, 15), (2, 40), (3, 111)])
def test_chunks_count_every_window_byte_once(masked, m, kh, run):
    chunks = window_chunks(kh, run, masked, m)
    if chunks is None:
        assert not masked and run < m
        return
    seen = np.zeros((kh, run), dtype=int)
    for chunk in chunks:
        for piece in chunk.pieces:
            lanes = range(max(piece.first, chunk.keep), piece.first + piece.lanes)
            for lane in lanes:
                seen[piece.row, piece.offset + lane - piece.first] += 1
            assert 0 <= piece.offset and piece.offset + piece.lanes <= run  # inside the run
    assert (seen == 1).all()


@pytest.mark.parametrize("target", ["host", "aarch64"])
@pytest.mark.parametrize("o,kh,kw,cb", [(5, 3, 3, 5), (16, 3, 3, 32), (9, 1, 1, 16), (3, 2, 3, 7)])
def test_relaid_weights_hold_every_weight_once(target, o, kh, kw, cb):
    t = get_target(target)
    plan = plan_blocks(t.popcount, t.vector_bytes, t.masked_loads, kh, kw * cb, o, 4, True)
    if plan is None:
        return
    w = np.random.default_rng(1).integers(1, 256, (o, kh, kw, cb)).astype(np.uint8)
    wv = relaid_weights(plan, w, kw * cb)
    m, q = plan.chunk_bytes, len(plan.chunks)
    per_channel = wv.reshape(plan.channel_vectors, q, plan.per_vector, m).transpose(
        0, 2, 1, 3).reshape(-1, q * m)
    for c in range(o):
        assert sorted(per_channel[c][per_channel[c] != 0]) == sorted(w[c].ravel())
    assert not per_channel[o:].any()


@pytest.mark.parametrize("pad", [-1, 0, 1])
def test_border_correction_gives_the_padded_output(pad):
    """One output whose kernel row 0 lies above the input: the kernel's value (row 0 read as
    zero bytes) plus the correction equals the reference's padded output."""
    rng = np.random.default_rng(pad + 5)
    c, kh, kw = 11, 3, 2
    x = np.where(rng.random((1, 2, kw, c)) < 0.5, 1, -1).astype(np.int8)
    w = np.where(rng.random((4, kh, kw, c)) < 0.5, 1, -1).astype(np.int8)
    want = reference.bconv2d(x, w, (1, 1), (1, 1), (1, 0, 0, 0), pad)[0, 0, 0]
    zero_row = np.concatenate([np.ones((1, 1, kw, c), np.int8), x], axis=1)  # +1 = zero bits
    kernel = reference.bconv2d(zero_row, w, (1, 1), (1, 1), (0, 0, 0, 0), 1)[0, 0, 0]
    table = correction_table(pad, reference.pack(w), 4, c, [frozenset()])
    assert np.array_equal(kernel + table[0, 0], want)


@pytest.mark.parametrize("pad", [-1, 0, 1])
def test_column_correction_gives_the_padded_output(pad):
    """An output whose kernel column 0 lies left of the input and row 2 below it: the kernel's
    value (those taps read as zero bytes) plus the column entry and row 2's entry."""
    rng = np.random.default_rng(pad + 9)
    c, kh, kw = 13, 3, 3
    x = np.where(rng.random((1, 2, 2, c)) < 0.5, 1, -1).astype(np.int8)
    w = np.where(rng.random((5, kh, kw, c)) < 0.5, 1, -1).astype(np.int8)
    want = reference.bconv2d(x, w, (1, 1), (1, 1), (0, 1, 1, 0), pad)[0, 0, 0]
    padded = np.ones((1, 3, 3, c), np.int8)  # +1 = zero bits
    padded[:, :2, 1:] = x
    kernel = reference.bconv2d(padded, w, (1, 1), (1, 1), (0, 0, 0, 0), 1)[0, 0, 0]
    table = correction_table(pad, reference.pack(w), 5, c, [frozenset(), frozenset({0})])
    assert np.array_equal(kernel + table[1, kh] + table[1, 2], want)


@pytest.mark.parametrize("target", ["host", "aarch64"])
@pytest.mark.parametrize("o,run,width", [(256, 96, 26), (64, 24, 54), (512, 192, 5), (37, 15, 9)])
def test_cost_model_keeps_to_the_registers(target, o, run, width):
    t = get_target(target)
    plan = plan_blocks(t.popcount, t.vector_bytes, t.masked_loads, 3, run, o, width, True)
    if plan is None:
        return
    p, b = plan.pixels, plan.vectors
    assert p * b + p + b <= REGISTERS[plan.popcount] - SLACK[plan.popcount]
    assert p <= width and plan.tile >= min(2 * b, plan.channel_vectors)
    assert plan.tile % b == 0 or plan.tile == plan.channel_vectors
    assert plan.describe().startswith(f"{p} px x {b * plan.per_vector} ch")


def test_row_loop_when_rows_are_cut_alike():
    t = get_target("host")
    assert plan_blocks("ctpop", 64, True, 3, 96, 256, 26, True).row_period == 24
    assert plan_blocks("ctpop", 64, True, 3, 15, 37, 26, True).row_period is None
    assert plan_blocks("neon", 16, False, 3, 72, 64, 54, True).row_period == 5
    assert plan_blocks("neon", 16, False, 3, 24, 64, 54, True).row_period is None  # spanning
    assert t.popcount in REGISTERS


# ---------------------------------------------------------------------------------------------
# (b) Compiled code
# ---------------------------------------------------------------------------------------------


def block_choices(target: str) -> list[tuple[int, int]]:
    """Every (pixels, channel vectors) the cost model may choose on ``target``."""
    popcount = get_target(target).popcount
    budget = REGISTERS[popcount] - SLACK[popcount]
    return [(p, b) for p in range(1, MAX_PIXELS + 1) for b in range(1, budget)
            if p * b + p + b <= budget]


@contextmanager
def forced(block: tuple[int, int]):
    old = os.environ.get(FORCE_ENV)
    os.environ[FORCE_ENV] = f"{block[0]},{block[1]}"
    try:
        yield
    finally:
        if old is None:
            del os.environ[FORCE_ENV]
        else:
            os.environ[FORCE_ENV] = old


def conv_module(x_shape, w_packed: np.ndarray, c: int, s, d, pads, pad_value) -> ModuleOp:
    n, h, wd, words = x_shape
    o, kh, kw, _ = w_packed.shape
    oh = conv_output_size(h, kh, s[0], d[0], pads[0], pads[1])
    ow = conv_output_size(wd, kw, s[1], d[1], pads[2], pads[3])
    x_type = TensorType(i8, [n, h, wd, words])
    w_type = TensorType(i8, list(w_packed.shape))
    out_type = TensorType(i32, [n, oh, ow, o])
    block = Block(arg_types=[x_type])
    weights = arith.ConstantOp(numpy_to_dense(w_packed, w_type))
    conv = BConv2dOp(block.args[0], weights, in_channels=c, strides=s, dilations=d, padding=pads,
                     pad_value=pad_value, result_type=out_type)
    block.add_ops([weights, conv, func.ReturnOp(conv)])
    return ModuleOp([func.FuncOp("bconv", ([x_type], [out_type]), Region(block))])


@st.composite
def conv_cases(draw, target: str):
    c = draw(st.sampled_from([3, 8, 37, 64, 100, 128, 192, 200, 256, 300]))
    o = draw(st.sampled_from([1, 3, 5, 13, 16, 17, 33]))
    k = draw(st.sampled_from([(3, 3), (1, 1), (2, 3), (3, 1)]))
    s = draw(st.sampled_from([(1, 1), (1, 1), (2, 2), (1, 2)]))
    d = draw(st.sampled_from([(1, 1), (1, 1), (2, 1), (1, 2)]))
    pads = tuple(draw(st.integers(0, 2)) for _ in range(4))
    h_min = max(1, (k[0] - 1) * d[0] + 1 - pads[0] - pads[1])
    w_min = max(1, (k[1] - 1) * d[1] + 1 - pads[2] - pads[3])
    return dict(n=draw(st.integers(1, 2)), h=draw(st.integers(h_min, h_min + 5)),
                w=draw(st.integers(w_min, w_min + 11)), c=c, o=o, k=k, s=s, d=d, pads=pads,
                pad_value=draw(st.sampled_from([-1, 0, 1])),
                block=draw(st.sampled_from(block_choices(target))),
                rows=draw(st.sampled_from(ROW_CODES)))


def check_conv(case, seed, target):
    rng = np.random.default_rng(seed)
    x = np.where(rng.random((case["n"], case["h"], case["w"], case["c"])) < 0.5, 1, -1)
    w = np.where(rng.random((case["o"], *case["k"], case["c"])) < 0.5, 1, -1)
    x, w = x.astype(np.int8), w.astype(np.int8)
    xp, wp = reference.pack(x).view(np.int8), reference.pack(w).view(np.int8)
    assert xp.shape[-1] == packed_words(case["c"])
    module = conv_module(xp.shape, wp, case["c"], case["s"], case["d"], case["pads"],
                         case["pad_value"])
    with forced(case["block"]), layer_code(case.get("rows", "unchecked")):
        program = compile_module(module, target=target, threads=1)
    want = reference.bconv2d(x, w, case["s"], case["d"], case["pads"], case["pad_value"])
    assert np.array_equal(run_conv(program, target, xp).reshape(want.shape), want)


def run_conv(program, target: str, xp: np.ndarray) -> np.ndarray:
    """The output of ``program`` on ``xp``: in this process, or under qemu for aarch64."""
    if get_target(target).is_host:
        return np.asarray(program(xp)[0])
    _, outputs, arena = program._call_arguments([xp])
    return np.asarray(cross.run_aarch64(program.object_code(), program.signature.entry, [xp],
                                        outputs, arena)[0])


@settings(max_examples=10, deadline=None)
@given(conv_cases("host"), st.integers(0, 2**32 - 1))
def test_blocked_conv_bit_exact_host(case, seed):
    check_conv(case, seed, "host")


def distinct_choices(target: str, width: int, channel_vectors: int) -> list[tuple[int, int]]:
    """The block choices that differ on a layer (larger ones are clamped to its size)."""
    return sorted({(min(p, width), min(b, channel_vectors)) for p, b in block_choices(target)})


@pytest.mark.parametrize("rows", ROW_CODES)
@pytest.mark.parametrize("block", distinct_choices("host", 5, 2))
def test_every_block_choice_host(block, rows):
    """A 20-channel 3x3 layer of 5 interior columns and 17 channels (2 vectors of 16) with each
    block size (partial pixel tiles and channel blocks, border rows and columns), its interior
    rows by either code."""
    case = dict(n=1, h=3, w=7, c=20, o=17, k=(3, 3), s=(1, 1), d=(1, 1), pads=(1, 1, 1, 1),
                pad_value=-1, block=block, rows=rows)
    check_conv(case, 3, "host")


@needs_qemu
@settings(max_examples=8, deadline=None)
@given(conv_cases("aarch64"), st.integers(0, 2**32 - 1))
def test_blocked_conv_bit_exact_aarch64(case, seed):
    check_conv(case, seed, "aarch64")


@pytest.mark.parametrize("target", ["host", pytest.param("aarch64", marks=needs_qemu)])
def test_long_rows_loop_over_groups_of_chunks(target):
    """512 channels: a kernel row of 192 bytes is 12 NEON chunks (48 host chunks), looped over
    in unrolled groups whose loads run past the channel extent into the next taps."""
    case = dict(n=1, h=3, w=6, c=512, o=5, k=(3, 3), s=(1, 1), d=(1, 1), pads=(1, 1, 1, 1),
                pad_value=0, block=(2, 1))
    t = get_target(target)
    plan = plan_blocks(t.popcount, t.vector_bytes, t.masked_loads, 3, 3 * 64, 5, 4, True)
    assert plan is not None and plan.row_group < plan.row_period
    check_conv(case, 11, target)


def test_partial_last_chunk_is_never_grouped_with_whole_ones():
    """A 1x1 layer of 1000 channels: a run of 125 bytes is 31 whole 4-byte chunks and a masked
    1-byte one, so the row is unrolled whole (a group loop would load the last chunk whole and
    count 3 bytes of the next image); batch 3 so those bytes hold data."""
    plan = plan_blocks("ctpop", 64, True, 1, 125, 8, 1, False)
    assert plan is not None and plan.chunks[-1].pieces[0].lanes == 1
    assert plan.row_group == plan.row_period == 32
    case = dict(n=3, h=1, w=1, c=1000, o=8, k=(1, 1), s=(1, 1), d=(1, 1), pads=(0, 0, 0, 0),
                pad_value=0, block=(1, 1))
    check_conv(case, 5, "host")


@pytest.mark.parametrize("words,run,border", [(16, 48, "rows+columns"), (32, 96, "rows+columns"),
                                              (8, 24, "rows+columns"), (38, 114, "rows"),
                                              (12, 36, "rows")])
def test_neon_border_columns_when_taps_are_whole_halves(words, run, border):
    """NEON computes the border columns in the blocked kernel when a tap is whole 8-byte halves
    (``Cb % 8 == 0``): the chunks of a missing tap are skipped whole, the others load the
    halves of the taps inside the input."""
    plan = plan_blocks("neon", 16, False, 3, run, 64, 26, True, 2, words)
    assert plan is not None and plan.border == border


@pytest.mark.parametrize("kh,run,chunks", [(3, 24, 5), (2, 24, 3), (1, 24, 2), (3, 72, 15),
                                           (3, 40, 8), (3, 48, 9)])
def test_neon_spanning_chunks_of_short_rows(kh, run, chunks):
    """Rows of ``16k + 8`` bytes: the window is cut across rows in 8-byte halves when that takes
    fewer chunks (at most MAX_SPANNING), else row by row with overlaps."""
    plan = plan_blocks("neon", 16, False, kh, run, 64, 26, True, 2, 8)
    assert plan is not None and len(plan.chunks) == chunks
    spans = any(len({p.row for p in c.pieces}) > 1 for c in plan.chunks)
    assert spans == (chunks < kh * -(-run // 16))
    assert all(p.lanes in (8, 16) and p.first in (0, 8) for c in plan.chunks for p in c.pieces)


@needs_qemu
@pytest.mark.parametrize("c,o,pads,s,d,n,pad_value,block", [
    (128, 5, (1, 1, 1, 1), (1, 1), (1, 1), 1, -1, (2, 4)),
    (256, 17, (0, 2, 2, 1), (1, 1), (2, 1), 2, 0, (3, 2)),
    (128, 3, (2, 1, 2, 2), (2, 2), (1, 1), 1, 1, (1, 5)),
    (128, 13, (1, 0, 0, 2), (1, 2), (1, 1), 2, 0, (2, 3)),
    (256, 33, (2, 2, 1, 0), (2, 1), (1, 1), 1, -1, (4, 2)),
    (64, 5, (1, 1, 1, 1), (1, 1), (1, 1), 1, -1, (2, 4)),
    (64, 17, (2, 0, 2, 1), (1, 1), (2, 1), 2, 0, (3, 2)),
    (64, 3, (0, 2, 1, 2), (2, 2), (1, 1), 1, 1, (1, 3)),
    (192, 13, (1, 2, 2, 0), (1, 2), (1, 1), 2, 1, (2, 3)),
    (192, 9, (1, 1, 1, 1), (2, 1), (2, 1), 1, -1, (2, 2)),
])
def test_neon_border_columns_bit_exact(c, o, pads, s, d, n, pad_value, block):
    """The blocked NEON border columns (taps of whole 8-byte halves; 64 channels: chunks across
    kernel rows, 192: rows cut with overlaps): every pad value, pads up to 2 (two missing kernel
    columns), stride 2, dilation, batch 2, awkward channel counts."""
    h, w = 5, 7
    case = dict(n=n, h=h, w=w, c=c, o=o, k=(3, 3), s=s, d=d, pads=pads, pad_value=pad_value,
                block=block)
    check_conv(case, c + o, "aarch64")


# ---------------------------------------------------------------------------------------------
# (c) Parallel units of few-row layers: rows x channel parts
# ---------------------------------------------------------------------------------------------


def test_chunk_loads_deal_like_the_runtime():
    """run_chunk in runtime/parallel.c: contiguous chunks, the first n % chunks one longer."""
    assert chunk_loads([1.0] * 7, 2) == [4.0, 3.0]
    assert chunk_loads([1.0] * 7, 4) == [2.0, 2.0, 2.0, 1.0]
    assert chunk_loads([5.0, 1.0, 1.0], 4) == [5.0, 1.0, 1.0]
    assert chunk_loads([1.0, 2.0, 3.0, 4.0, 5.0], 2) == [6.0, 9.0]


def stage_cost(pixels: int, block: int, width: int) -> Callable[[int], float]:
    return lambda vectors: row_cost(pixels, block, 9, width, vectors, False)


@pytest.mark.parametrize("rows,vectors,block,width,want", [
    (56, 4, 4, 54, (1, 4, 4)),     # many rows balance alone
    (28, 16, 4, 26, (1, 16, 16)),  # 28 rows: 14 + 14, 7 x 4
    (7, 32, 3, 5, (4, 8, 8)),      # 7x7x512 3x3: rows alone are 4 + 3 on two threads
    (7, 32, 5, 7, (2, 15, 17)),    # B = 5: whole blocks, not 16 + 16
    (14, 16, 4, 12, (2, 8, 8)),    # 14 rows are 4 + 4 + 3 + 3 on four threads
    (1, 7, 2, 5, (2, 4, 3)),       # one row: the last part the smaller
])
def test_channel_parts_of_stage_shapes(rows, vectors, block, width, want):
    parts = channel_parts(rows, vectors, block, stage_cost(4, block, width))
    assert (parts.count, parts.span, parts.last) == want


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 64), st.integers(1, 64), st.integers(1, 6), st.integers(1, 4),
       st.integers(1, 60))
def test_channel_parts_cover_every_vector_and_never_lose(rows, vectors, block, pixels, width):
    """The parts cover the row's vectors once, each part a whole block at least (the first ones
    two), and the split is never worse than the rows alone on the threads it is made for."""
    cost = stage_cost(pixels, block, width)
    parts = channel_parts(rows, vectors, block, cost)
    sizes = parts.sizes()
    assert sum(sizes) == vectors and len(sizes) == parts.count <= MAX_CHANNEL_PARTS
    if parts.count > 1:
        assert parts.span >= 2 * block and parts.last >= block

    def worst(p: ChannelParts) -> float:
        units = [cost(size) for _ in range(rows) for size in p.sizes()]
        return max(max(chunk_loads(units, k)) * k for k in SPLIT_THREADS)

    whole = ChannelParts(1, vectors, vectors)
    assert worst(parts) <= worst(whole) + 1e-9


@pytest.mark.parametrize("target", ["host", pytest.param("aarch64", marks=needs_qemu)])
@pytest.mark.parametrize("n,h,w,c,o,s,pads,pad_value,block", [
    (1, 1, 9, 64, 100, (1, 1), (1, 1, 1, 1), -1, (2, 2)),   # one row, partial last part
    (2, 3, 7, 133, 130, (1, 1), (1, 1, 1, 1), 0, (3, 2)),   # batch 2, odd channels
    (1, 5, 9, 100, 99, (2, 2), (1, 1, 1, 1), 1, (2, 2)),    # stride 2 to 3 rows
    (1, 3, 5, 200, 128, (1, 1), (0, 2, 2, 0), -1, (1, 2)),  # O a whole number of vectors
])
def test_channel_parts_bit_exact(split_small_layers, target, n, h, w, c, o, s, pads, pad_value,
                                 block):
    """Few-row layers cut into row x channel-part units: the same output on 1, 2, 3 and 4
    threads as the reference, with every part of its own size and the one past ``O``."""
    rng = np.random.default_rng(c + o)
    x = np.where(rng.random((n, h, w, c)) < 0.5, 1, -1).astype(np.int8)
    wt = np.where(rng.random((o, 3, 3, c)) < 0.5, 1, -1).astype(np.int8)
    xp, wp = reference.pack(x).view(np.int8), reference.pack(wt).view(np.int8)
    module = conv_module(xp.shape, wp, c, s, (1, 1), pads, pad_value)
    with forced(block), layer_code("unchecked"):
        program = compile_module(module, target=target, threads=2, cache=False)
    assert split_small_layers and split_small_layers[-1].count > 1
    want = reference.bconv2d(x, wt, s, (1, 1), pads, pad_value)
    for threads in (1, 2, 3, 4) if get_target(target).is_host else (2,):
        program.threads = threads
        assert np.array_equal(run_conv(program, target, xp).reshape(want.shape), want)


@st.composite
def few_row_cases(draw, target: str):
    """Layers of 1-6 output rows and 64-300 output channels: awkward channel counts, stride 2,
    dilation, batch 2, every pad value and block size (rows x channel parts when they pay)."""
    case = draw(conv_cases(target))
    case["o"] = draw(st.sampled_from([100, 130, 191, 256, 300]))
    case["block"] = draw(st.sampled_from([b for b in block_choices(target) if b[1] <= 2]))
    case["h"] = draw(st.integers(1, 4)) + max(0, (case["k"][0] - 1) * case["d"][0]
                                              - case["pads"][0] - case["pads"][1])
    return case


@settings(max_examples=8, deadline=None)
@given(few_row_cases("host"), st.integers(0, 2**32 - 1))
def test_split_layers_bit_exact_host(case, seed):
    """Randomized few-row layers compiled parallel: the reference's output on 1 to 4 threads."""
    rng = np.random.default_rng(seed)
    x = np.where(rng.random((case["n"], case["h"], case["w"], case["c"])) < 0.5, 1, -1)
    w = np.where(rng.random((case["o"], *case["k"], case["c"])) < 0.5, 1, -1)
    x, w = x.astype(np.int8), w.astype(np.int8)
    xp, wp = reference.pack(x).view(np.int8), reference.pack(w).view(np.int8)
    module = conv_module(xp.shape, wp, case["c"], case["s"], case["d"], case["pads"],
                         case["pad_value"])
    with forced(case["block"]), splitting_small_layers(), layer_code(case["rows"]):
        program = compile_module(module, target="host", threads=2, cache=False)
    want = reference.bconv2d(x, w, case["s"], case["d"], case["pads"], case["pad_value"])
    for threads in (1, 2, 3, 4):
        program.threads = threads
        assert np.array_equal(run_conv(program, "host", xp).reshape(want.shape), want)


@pytest.mark.parametrize("n,h,c,o,pads,want", [
    (2, 8, 125, 125, (1, 1, 1, 1), (0, 0)),    # the demo network's 8x8 layer, 9 M MACs
    (1, 56, 64, 64, (1, 1, 1, 1), (1, 55)),    # Bi-Real-Net-18's stage 1, 116 M MACs
    (2, 8, 125, 125, (0, 0, 1, 1), (0, 6)),    # no border rows: every row unchecked
])
def test_small_layers_run_every_row_through_the_checked_code(n, h, c, o, pads, want):
    """The unchecked copy of the kernel is emitted for interior rows of at least
    ``MIN_UNCHECKED_ROWS_MACS`` MACs only (both copies are bit-exact: the randomized tests draw
    either)."""
    from bnnmlir.dialects.bnn import BConv2dOp
    from bnnmlir.passes.loops.bconv2d import ConvLowering

    words = packed_words(c)
    w = np.zeros((o, 3, 3, words), np.int8)
    module = conv_module((n, h, h, words), w, c, (1, 1), (1, 1), pads, -1)
    (op,) = [op for op in module.walk() if isinstance(op, BConv2dOp)]
    assert ConvLowering(op, get_target("host"), None, check_kind=False).rows == want
