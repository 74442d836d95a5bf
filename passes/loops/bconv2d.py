"""Direct binary convolution (buffer-form ``bnn.bconv2d``) as a loop nest with ``bnn.narrow_acc``.

Loop nest, for ``x: [N, H, W, Cb]``, ``w: [O, KH, KW, Cb]``, ``out: [N, OH, OW, O]``::

    for r in [0, N*OH)                 (scf.parallel when requested and the layer has at least
                                        MIN_PARALLEL_MACS MACs; n = r / OH, oh = r % OH)
      if oh in the interior rows:      (scf.if, only when some rows are not interior)
        columns(rows checked = no)
      else:
        columns(rows checked = yes)

With the blocked kernel below, a parallel loop may run over ``N*OH*parts`` units instead, unit
``u`` computing row ``u / parts`` for the ``u % parts``-th contiguous range of output channel
vectors (:func:`channel_parts`: few rows do not balance over the threads on their own).

    columns: for ow in [0, lo) border | [lo, hi) interior | [hi, OW) border
               for each block of B output channels o0 .. o0+B-1 (then the O % B left over):
                 B outputs accumulated together, every loaded activation vector shared by the B

Interior, at compile time: along an axis of input size ``S``, output size ``OS``, kernel ``K``,
stride ``s``, dilation ``d`` and leading padding ``p``, output ``i`` reads ``i*s - p + k*d`` for
``k < K``; all those are in ``[0, S)`` iff ``lo <= i < hi`` with ``lo = ceil(p / s)`` and
``hi = floor((S - 1 + p - (K-1)*d) / s) + 1`` (both clamped to ``[0, OS]``, empty when
``hi <= lo``). Interior rows need no row check, interior columns no column check; a position that
is interior along both axes runs no compare and no select at all.

Interior columns (and border rows, and short-tap border columns) of layers with constant weights,
contiguous kernel rows and at least ``MIN_BLOCKED_MACS`` MACs
(:mod:`~bnnmlir.passes.loops.lowering`) take the register-blocked kernel instead: several pixels x
several output channels per block, its schedule a pure plan
(:mod:`bnnmlir.passes.loops.bconv_plan`), emitted by :mod:`bnnmlir.passes.loops.bconv_blocks`. The
rest takes one of the paths below.

Three ways to reduce one output, each with its own chunking and accumulator plan
(:func:`bnnmlir.passes.accumulator_width.plan_accumulator`, proof there):

* **patches** (positions interior along both axes, ``dilation_w == 1``, targets with cheap
  zero-masked loads, ``TargetInfo.masked_loads``): the weights of channel ``o`` are one run of
  ``T = KH*R`` bytes (``R = KW*Cb``), and the window of a position is ``KH`` runs of ``R`` bytes.
  The window is read once per position, before the channel loop, as ``Q = ceil(T / M)`` vectors
  (``M``: :func:`patch_width`, which weighs ``Q`` against the cost of summing wider lanes; a
  short window is ``T`` rounded up to a power of two): lane ``p`` of vector
  ``j`` is window byte ``t = j*M + p``, i.e. byte ``t - r*R`` of kernel row ``r = t // R``. Each
  kernel row that meets vector ``j`` fills its lanes by one ``vector.maskedload`` that merges
  into the previous rows' lanes (lanes past ``T`` stay 0); each channel then reads its weights
  ``j*M ..`` as plain vectors, the last one zero-masked past ``T``. Bytes past the window are 0 in
  both operands and count nothing, so an output is a chain of ``Q`` steps
  (``plan_accumulator(1, 1, Q, M)``). A row's load may start before its run (at ``r*R - j*M``
  masked-off lanes): that address is still inside the input, since the run starts at flat byte
  ``((n*H + ih)*W + iw0)*Cb >= r*W*Cb >= r*R`` (``ih >= r``, ``R <= W*Cb``), and masked-off lanes
  are never accessed. Used when ``Q <= MAX_PATCH_CHUNKS``.
  On the ``ctpop`` (host) targets, when the weights are a constant ``memref.global`` and
  ``B*M`` bytes fit one vector, a full block of ``B`` channels reads them from a re-laid copy
  (:func:`weight_blocks`): one ``B*M``-byte load per vector ``j`` for the whole block, against
  the window vector repeated ``B`` times (``vector.shuffle``), into one accumulator holding the
  ``B`` outputs in runs of ``L`` lanes.

* **kernel-row runs** (interior columns, ``dilation_w == 1``): the ``KW`` taps of kernel row
  ``kh`` are contiguous in both operands (NHWC, row-major): ``x[n, ih, iw0 : iw0+KW, :]`` and
  ``w[o, kh, 0:KW, :]`` are each one run of ``R = KW*Cb`` bytes. The run is read as ``M``-byte
  vectors (``M = chunk_bytes(R)``) at the compile-time offsets ``0, M, ..., (R//M - 1)*M`` and,
  when ``R % M != 0``, ``R - M``: that last vector overlaps the previous one by ``M - R % M``
  bytes, which are ANDed to 0 in both operands (``0 XOR 0 = 0``, nothing is counted twice). So a
  row is ``Q = ceil(R / M)`` steps, an output a chain of ``KH*Q`` steps
  (``plan_accumulator(KH, 1, Q, M)``; its flushes are per kernel row). A vector may span several
  taps: its load starts at the in-range element ``(iw0 + off // Cb, off % Cb)`` and reads on into
  the next taps of the same run (the memref is row-major with the identity layout). Only used
  when ``Q <= MAX_RUN_CHUNKS`` (the offsets are unrolled); else interior columns take the per-tap
  path without column checks.
  In a border row (only reached when some row is out of range), kernel row ``kh`` is in range or
  not as a whole (``ok = ih <u H``, one compare per row): the activation vectors are selected
  with the padding bytes below, ``-1`` padding using the per-offset pattern of the run (``0xFF``,
  and ``last_word_mask(C)`` at each tap's last byte).
* **per tap** (border columns, or ``dilation_w != 1``, or long runs): each tap's ``Cb`` bytes in
  ``M = chunk_bytes(Cb)`` chunks (a loop), then a tail of ``Cb % M`` bytes inserted one by one into
  zero vectors: an output is a chain of ``KH*KW*Q`` steps (``Q`` chunks per tap,
  ``plan_accumulator(KH, KW, Q, M)``).

Padding, without out-of-bounds loads: a tap's row is in range iff ``ih`` is in ``[0, H)`` (one
unsigned compare ``ih <u H``, negative ``ih`` being huge), same for columns; out-of-range taps load
from the clamped position ``(ok ? ih : 0, ok ? iw : 0)`` and the loaded activation vector is
replaced with ``arith.select ok, loaded, padding``, where ``padding`` is

* ``pad_value = +1``: all bits 0 (+1);
* ``pad_value = -1``: 0xFF on full bytes and ``last_word_mask(C)`` on the last byte of a tap (only
  the ``C`` valid channels are -1; the unused bits must stay 0 like the weight's);
* ``pad_value = 0``: the weight vector itself, so ``a XOR w = 0`` and the tap adds no popcount;
  the tap is not counted in ``K`` either: ``K = C * (number of in-range taps)``, counted in ``i32``.

With ``pad_value = -1`` and ``C % 8 != 0`` the last byte lies in the last full chunk of the
per-tap path when there is no tail; that chunk is peeled off the chunk loop to use its own padding
vector.

Summing the lanes: xDSL's ``arith.extui`` takes no vectors, so the lanes are summed either in the
lane type when the sum provably fits it (by the bit convention only the ``C`` valid bits of a tap
can differ, so a whole output's popcount is at most ``K = KH*KW*C``), or lane by lane:
``vector.extract`` + scalar ``extui`` to ``i32`` + a balanced tree of ``addi``, which LLVM folds
back into one widening vector reduction. In the lane type, one output is one
``vector.reduction <add>``; the ``B`` outputs of a block are summed together
(:func:`transposed_lane_sums`: ``vector.shuffle`` + ``addi`` levels that only ever add lanes of
the same output, so every partial sum is at most that output's ``K``) on the ``ctpop`` targets
when each accumulator is a whole vector (:func:`sums_together`), and always for the one
accumulator of a block read from re-laid weights. ``out = K - 2*popcount``.

Fused output transforms, applied to each ``i32`` result before its store: ``clip8`` (``maxsi``,
``minsi``, ``trunci``), ``threshold`` (compare with the channel's threshold, bits packed 8 per
byte), ``requant8`` (the per-element map of ``bnn.requant8`` for output channel ``o``, emitted by
:func:`bnnmlir.passes.loops.support.requant8_element`; its arrays are constant globals); then a
fused residual: ``residual[n, oh, ow, o]`` is loaded at the store's own index and ``clip8(t + r)``
stored (the residual buffer is only read, at the position written). Whole blocks take the vector
form (:meth:`ConvLowering.store_vector`): the ``i32`` results of ``EPILOGUE_BLOCKS`` blocks in one
vector, the affine requant8 lane-wise (in ``i32`` where
:func:`~bnnmlir.passes.loops.support.affine_arrays` proves it exact), the residual as a saturating
byte add and a max (:func:`~bnnmlir.passes.loops.support.clip8_add`); the other requant8 kinds and
the channels left over take the per-element form.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from xdsl.dialects import arith, llvm, memref, vector
from xdsl.dialects.builtin import (
    DenseArrayBase,
    DenseIntOrFPElementsAttr,
    IntegerAttr,
    IntegerType,
    MemRefType,
    TensorType,
    VectorType,
    f32,
    i1,
    i8,
    i32,
    i64,
)
from xdsl.ir import SSAValue
from xdsl.traits import SymbolTable

from bnnmlir.bits import CLIP8_MAX, CLIP8_MIN, WORD_BITS, PadValue, last_word_mask
from bnnmlir.dialects.bnn import BConv2dOp, NarrowAccOp
from bnnmlir.ir_utils import dense_to_numpy
from bnnmlir.passes.accumulator_width import AccumulatorPlan, plan_accumulator
from bnnmlir.passes.loops.bconv_blocks import (
    BlockKernel,
    Epilogue,
    VectorRange,
    add_block_globals,
)
from bnnmlir.passes.loops.bconv_plan import BlockPlan, forced_block, plan_blocks, row_cost
from bnnmlir.passes.loops.elementwise import ThresholdTables, threshold_minus, threshold_tables
from bnnmlir.passes.loops.emitter import Emitter
from bnnmlir.passes.loops.float_chain import ChainCode, f32_splat
from bnnmlir.passes.loops.lowering import (
    LoweringContext,
    ModuleGlobals,
    interior_range,
    large_enough_to_block,
    rows_without_checks,
)
from bnnmlir.passes.loops.support import (
    AffineArrays,
    RequantElement,
    affine_arrays,
    affine_requant_vector,
    clamp_clip8,
    clip8_add,
    requant8_epilogue,
)
from bnnmlir.target import TargetInfo

MAX_RUN_CHUNKS = 16
"""Most vectors per kernel-row run (their offsets are unrolled)."""
MAX_PATCH_CHUNKS = 16
"""Most vectors per patch (they stay live across the output channels of a position)."""
OUTPUT_BLOCK = 4
"""Output channels accumulated together (``B``) when blocking pays off, see
:func:`blocks_outputs`."""


def blocks_outputs(target: TargetInfo) -> bool:
    """Whether to accumulate ``OUTPUT_BLOCK`` channels together, in lanes of at least 16 bits.

    Blocking shares every activation load between ``B`` outputs, but LLVM only turns the lane sum
    of an 8-bit accumulator (``extract`` + ``extui`` + ``addi`` tree) into a vector reduction when
    one such tree is alone in its block: ``B`` of them are scalarized. So blocked outputs use lanes
    whose type holds the whole sum (16 bits, or 8 when ``K <= 255``), summed by one
    ``vector.reduction`` in the lane type. That is free on both targets: with 16-byte (NEON)
    vectors the widening step is ``uadalp`` and the sum ``addv``; on the ``ctpop`` (host) targets
    a 16-bit lane is exactly two bytes, so its step is one ``vpopcntw`` (no widening, see
    :mod:`bnnmlir.passes.llvm.narrow_acc`), and LLVM reduces the ``B`` sums together.
    """
    return target.popcount in ("neon", "ctpop")

def sums_together(target: TargetInfo) -> bool:
    """Whether the lanes of the ``B`` outputs of a block are summed together
    (:func:`transposed_lane_sums`) rather than by one ``vector.reduction`` each.

    Each reduction of ``L`` lanes is ``log2 L`` shuffle-add levels on one output; summed
    together, the first levels serve ``B`` outputs at once (``B = 4``, ``L = 32``: 7 shuffle-adds
    for the block instead of 20). Only used when each accumulator is a whole vector
    (``ConvLowering.lane_sums``): narrower ones LLVM already packs into one vector itself
    (4 x 128 bits in one ``zmm``) and reduces with in-lane shuffles, which explicit shuffles
    prevent (measured slower: 4 x 16 bytes 0.32 -> 0.36 ms on stage1, 2 x 32 bytes 5% slower on
    stage2). Measured on AVX-512 (``ctpop``, Rocket Lake, stage3 about 0.18 -> 0.16 ms, stage4
    about 4% faster); NEON keeps ``addv``.
    """
    return target.popcount == "ctpop"


Outputs = Callable[[Emitter, Sequence[SSAValue]], list[SSAValue]]
"""``outputs(emitter, channels) -> the i32 results of those channels at one position``."""


def chunk_bytes(words: int, vector_bytes: int) -> int:
    """``M``: the vector width in bytes for ``words`` packed bytes (a power of two, at most
    ``words`` and ``vector_bytes``)."""
    m = 1
    while m * 2 <= min(words, vector_bytes):
        m *= 2
    return m


def needs_bounds_check(
    size: int, out_size: int, kernel: int, stride: int, dilation: int, pad_lo: int
) -> bool:
    """Whether some tap along one axis falls outside ``[0, size)``."""
    return interior_range(size, out_size, kernel, stride, dilation, pad_lo) != (0, out_size)


@dataclass(frozen=True)
class RunChunks:
    """The vectors of one kernel-row run of ``run_bytes`` contiguous bytes."""

    run_bytes: int
    m: int
    offsets: tuple[int, ...]
    """Start of each ``M``-byte vector in the run; the last one may overlap its predecessor."""
    overlap: int
    """Bytes at the start of the last vector that the previous one already counted (masked)."""


def run_chunks(run_bytes: int, vector_bytes: int) -> RunChunks:
    m = chunk_bytes(run_bytes, vector_bytes)
    full, rest = divmod(run_bytes, m)
    offsets = tuple(i * m for i in range(full)) + ((run_bytes - m,) if rest else ())
    return RunChunks(run_bytes, m, offsets, m - rest if rest else 0)


@dataclass(frozen=True)
class PatchPiece:
    """Lanes ``first .. first+lanes-1`` of a patch vector, read from kernel row ``row``."""

    row: int
    first: int
    lanes: int


@dataclass(frozen=True)
class PatchChunks:
    """The receptive field of one output as ``Q`` vectors of ``M`` bytes (see the module
    docstring, "patches")."""

    patch_bytes: int
    """``T = KH*R``: the bytes of one output's window, and of one output channel's weights."""
    run_bytes: int
    """``R = KW*Cb``: one kernel row."""
    m: int
    pieces: tuple[tuple[PatchPiece, ...], ...]
    """Per vector ``j``, the kernel rows that fill its lanes (the lanes past ``T`` stay 0)."""

    def valid(self, j: int) -> int:
        """Bytes of vector ``j`` inside the window (``M`` except maybe for the last)."""
        return min(self.m, self.patch_bytes - j * self.m)


PATCH_SUM_COST = {16: 0, 32: 6, 64: 9}
"""Extra cost of summing the lanes of a ``M``-byte accumulator, in ``narrow_acc`` steps, relative
to 16 bytes: one output pays ``ceil(T / M) + PATCH_SUM_COST[M]``. Measured with AVX-512 (Rocket
Lake, ``bnnmlir bench``): the wider sums cross 128-bit lanes and keep 512-bit units busy, so a
72-byte window is faster as 5 vectors of 16 bytes than as 2 of 64, a 288-byte one as 5 of 64."""


def patch_width(total: int, vector_bytes: int) -> int:
    """``M`` for a window of ``T = total`` bytes: ``T`` rounded up to a power of two when that is
    at most 16 bytes, else the width in ``PATCH_SUM_COST`` (at most ``vector_bytes``) of least
    cost."""
    fit = 1 << (total - 1).bit_length()
    widths = [m for m in PATCH_SUM_COST if m <= vector_bytes]
    if fit <= 16 or not widths:
        return min(fit, vector_bytes)
    return min(widths, key=lambda m: (-(-total // m) + PATCH_SUM_COST[m], m))


def patch_chunks(kernel_h: int, run_bytes: int, vector_bytes: int) -> PatchChunks:
    """Vector ``j`` holds window bytes ``j*M .. j*M + M - 1`` (``M = patch_width(T)``); row
    ``r`` covers window bytes ``r*R .. r*R + R - 1``."""
    total = kernel_h * run_bytes
    m = patch_width(total, vector_bytes)
    pieces = []
    for j in range(-(-total // m)):
        row_pieces = []
        for r in range(kernel_h):
            lo, hi = max(r * run_bytes, j * m), min((r + 1) * run_bytes, (j + 1) * m)
            if lo < hi:
                row_pieces.append(PatchPiece(r, lo - j * m, hi - lo))
        pieces.append(tuple(row_pieces))
    return PatchChunks(total, run_bytes, m, tuple(pieces))


def conv_plans(
    op: BConv2dOp, target: TargetInfo
) -> tuple[AccumulatorPlan, AccumulatorPlan | None]:
    """The accumulator plans of the per-tap path and of the kernel-row runs (``None`` when the
    interior does not use runs)."""
    lowering = ConvLowering(op, target, None, check_kind=False)
    return lowering.tap_plan, lowering.run_plan


def block_plan(op: BConv2dOp, target: TargetInfo) -> BlockPlan | None:
    """The plan of the register-blocked kernel of interior columns (``None``: not used)."""
    return ConvLowering(op, target, None, check_kind=False).block_plan


def patch_plan(op: BConv2dOp, target: TargetInfo) -> AccumulatorPlan | None:
    """The accumulator plan of the whole-window path of interior positions (``None`` when the
    target or the shape does not use it)."""
    return ConvLowering(op, target, None, check_kind=False).patch_plan


def reduce_add(em: Emitter, lanes: SSAValue, lane_type: IntegerType) -> SSAValue:
    """``vector.reduction <add>`` of an integer vector into a scalar of its element type."""
    return em.emit(
        vector.ReductionOp.create(
            operands=[lanes],
            result_types=[lane_type],
            properties={"kind": vector.CombiningKindAttr(vector.CombiningKindFlag.ADD)},
        )
    )


@dataclass(frozen=True)
class LaneShuffle:
    """One level of :func:`transposed_sum_plan`: ``add(shuffle(lhs, rhs, lo), shuffle(lhs, rhs,
    hi))`` (``rhs`` is ``lhs`` for a halving of one vector)."""

    lhs: int
    rhs: int
    lo: tuple[int, ...]
    hi: tuple[int, ...]


def transposed_sum_plan(count: int, lanes: int, segments: int = 1
                        ) -> tuple[list[list[LaneShuffle]], int, int]:
    """How to sum the lanes of each of ``count`` accumulators of ``L = lanes`` lanes together,
    each accumulator holding ``segments`` outputs in equal runs of lanes (output ``i`` of the
    accumulators in order is accumulator ``i // segments``, lanes of run ``i % segments``).

    Returns ``(levels, vectors, per_vector)``: level by level the shuffle-adds (their results
    replace the level's vectors, in order), then the number of vectors left and the outputs each
    of them holds, one per lane: output ``i`` ends in lane ``i % per_vector`` of vector
    ``i // per_vector``.

    The vectors of a level hold whole outputs in equal segments of ``s`` lanes: initially
    ``P = 2**ceil(log2 count)`` vectors (the ``count`` accumulators, then zero vectors),
    ``segments`` outputs each, ``s = L / segments``. While there are several vectors and
    ``s >= 2``, vectors ``2i`` and ``2i+1`` become one: ``lo`` takes the first ``s/2`` lanes of every segment of ``2i``, then of
    ``2i+1``; ``hi`` the last ``s/2``; their sum holds the outputs of both, ``s/2`` lanes each,
    every lane the sum of two lanes of the same output. Then each vector left halves itself the
    same way down to ``s = 1``. So the lanes of one output are only ever added to each other:
    every intermediate lane is a partial sum of one output's lanes, at most that output's total
    (lanes are unsigned), and no add wraps when the totals fit the lane type. ``count = 4``,
    ``L = 8``: 4 shuffle-adds instead of 4 reductions of 3 levels each.
    """
    assert count >= 1 and lanes >= 1 and lanes & (lanes - 1) == 0 and lanes % segments == 0
    vectors, seg, levels = 1 << (count - 1).bit_length(), lanes // segments, []

    def halves(seg: int, segments: int, base: int, upper: bool) -> list[int]:
        first = seg // 2 if upper else 0
        return [base + s * seg + first + i for s in range(segments) for i in range(seg // 2)]

    while vectors > 1 and seg >= 2:
        per = lanes // seg
        level = [LaneShuffle(2 * i, 2 * i + 1,
                             tuple(halves(seg, per, 0, False) + halves(seg, per, lanes, False)),
                             tuple(halves(seg, per, 0, True) + halves(seg, per, lanes, True)))
                 for i in range(vectors // 2)]
        levels.append(level)
        vectors, seg = vectors // 2, seg // 2
    width = lanes
    while seg >= 2:
        per = width // seg
        levels.append([LaneShuffle(i, i, tuple(halves(seg, per, 0, False)),
                                   tuple(halves(seg, per, 0, True))) for i in range(vectors)])
        width, seg = width // 2, seg // 2
    return levels, vectors, width


def transposed_lane_sums(em: Emitter, accs: Sequence[SSAValue], lanes: int,
                         lane_type: IntegerType, segments: int = 1) -> list[SSAValue]:
    """The lane sums (in ``lane_type``) of the outputs in ``accs`` by
    :func:`transposed_sum_plan`: pairwise ``vector.shuffle`` + ``addi`` levels, then one
    ``vector.extract`` per output. Exact when every output's sum fits ``lane_type``."""
    levels, _, per_vector = transposed_sum_plan(len(accs), lanes, segments)
    zero = em.vector_const([0] * lanes, lane_type)
    vs = list(accs) + [zero] * ((1 << (len(accs) - 1).bit_length()) - len(accs))

    def shuffle(a: SSAValue, b: SSAValue, mask: tuple[int, ...]) -> SSAValue:
        return em.emit(vector.ShuffleOp(a, b, DenseArrayBase.from_list(i64, mask),
                                        result_type=VectorType(lane_type, [len(mask)])))

    for level in levels:
        vs = [em.emit(arith.AddiOp(shuffle(vs[s.lhs], vs[s.rhs], s.lo),
                                   shuffle(vs[s.lhs], vs[s.rhs], s.hi))) for s in level]
    return [em.emit(vector.ExtractOp(vs[i // per_vector], [i % per_vector], lane_type))
            for i in range(len(accs) * segments)]


def zero_acc(em: Emitter, plan: AccumulatorPlan) -> SSAValue:
    return em.vector_const([0] * plan.lanes, IntegerType(plan.lane_bits))


def fits_lane(plan: AccumulatorPlan, bound: int) -> bool:
    return plan.lane_bits == 32 or bound <= 2**plan.lane_bits - 1


def lane_sums(em: Emitter, plan: AccumulatorPlan, accs: Sequence[SSAValue], bound: int,
              together: bool) -> list[SSAValue]:
    """The lane sums of ``accs`` as ``i32``, given that each is at most ``bound``: all together
    by :func:`transposed_lane_sums` when ``together`` and ``bound`` fits the lane type (and
    there are several), else one :func:`lane_sum` each."""
    if not together or len(accs) < 2 or not fits_lane(plan, bound):
        return [lane_sum(em, plan, acc, bound) for acc in accs]
    sums = transposed_lane_sums(em, accs, plan.lanes, IntegerType(plan.lane_bits))
    return sums if plan.lane_bits == 32 else [em.emit(arith.ExtUIOp(t, i32)) for t in sums]


def lane_sum(em: Emitter, plan: AccumulatorPlan, acc: SSAValue, bound: int) -> SSAValue:
    """The sum of the accumulator lanes as ``i32``, given that it is at most ``bound``.

    In the lane type when ``bound`` fits it (one ``vector.reduction``, then ``extui``); else
    each lane is extracted, extended to ``i32`` and summed by a balanced tree of ``addi``
    (LLVM turns that into a widening vector reduction).
    """
    lane_type = IntegerType(plan.lane_bits)
    if fits_lane(plan, bound):
        total = reduce_add(em, acc, lane_type)
        return total if plan.lane_bits == 32 else em.emit(arith.ExtUIOp(total, i32))
    terms = [
        em.emit(arith.ExtUIOp(em.emit(vector.ExtractOp(acc, [j], lane_type)), i32))
        for j in range(plan.lanes)
    ]
    while len(terms) > 1:
        pairs = [em.add(a, b) for a, b in zip(terms[::2], terms[1::2])]
        terms = pairs + terms[len(pairs) * 2 :]
    return terms[0]


def lanes_below(em: Emitter, lanes: int, count: SSAValue) -> SSAValue:
    """``vector<lanes x i1>``: lane ``i`` set iff ``i < count`` (an ``index``)."""
    limit = em.emit(vector.BroadcastOp(em.emit(arith.IndexCastOp(count, i32)),
                                       VectorType(i32, [lanes])))
    # arith.cmpi of xDSL is scalar-only; llvm.icmp compares lane-wise.
    slt = IntegerAttr(llvm.ICmpPredicateFlag("slt").to_int(), i64)
    return em.emit(llvm.ICmpOp(em.vector_const(list(range(lanes)), i32), limit, slt))


@dataclass(frozen=True)
class RowPart:
    """The channels of a row that one parallel unit computes: the blocked kernel's channel
    ``vectors``, i.e. the ``channels`` from ``vectors[0] * V`` (the others' range)."""

    vectors: VectorRange
    channels: int


class ConvLowering:
    """Emits the loop nest of one ``bnn.bconv2d`` (see the module docstring)."""

    def __init__(
        self,
        op: BConv2dOp,
        target: TargetInfo,
        thresholds: ThresholdTables | None = None,
        check_kind: bool = True,
        requant: RequantElement | None = None,
        affine_arrays: AffineArrays | None = None,
        chain: ChainCode | None = None,
        min_unchecked_rows_macs: int = -1,
        min_blocked_macs: int = -1,
    ):
        self.op = op
        self.min_unchecked_rows_macs = min_unchecked_rows_macs
        vector_bytes = target.vector_bytes
        self.kind = op.output_kind
        if check_kind and (self.kind == "threshold") != (thresholds is not None):
            raise ValueError("a threshold output needs its threshold tables, and only it")
        if check_kind and (self.kind == "requant8") != (requant is not None):
            raise ValueError("a requant8 output needs its requant8 emission, and only it")
        if check_kind and (self.kind == "f32") != (chain is not None):
            raise ValueError("an f32 output needs its float chain, and only it")
        self.thresholds = thresholds
        self.chain = chain
        self.requant = requant
        self.affine_arrays = affine_arrays
        # Shapes only: the value form works too (the per-layer report plans tensor-level ops).
        x_type, out_type = op.input.type, op.output_type()
        assert isinstance(x_type, MemRefType | TensorType)
        self.n, self.h, self.w, self.words = x_type.get_shape()
        _, self.oh, self.ow, _ = out_type.get_shape()
        self.o = op.weight.type.get_shape()[0]  # type: ignore[union-attr]
        self.kh, self.kw = op.kernel_hw
        self.sh, self.sw = op.stride_hw
        self.dh, self.dw = op.dilation_hw
        self.pt, _, self.pl, _ = op.pads
        self.pad = op.pad
        self.channels = op.channels
        fan_in = self.channels * self.kh * self.kw
        # Blocked outputs need lane sums in the lane type (see blocks_outputs).
        blocked = blocks_outputs(target) and fan_in <= 2**16 - 1
        self.block = min(OUTPUT_BLOCK, self.o) if blocked else 1
        self.sums_together = sums_together(target)
        self.vector_bytes = vector_bytes
        # 8-bit lanes stay when the whole sum fits them (fan-in <= 255).
        min_lane_bits = 16 if self.block > 1 and fan_in > 2**8 - 1 else 8
        # Per-tap chunking.
        self.m = chunk_bytes(self.words, vector_bytes)
        self.full, self.tail = divmod(self.words, self.m)
        self.tap_plan: AccumulatorPlan = plan_accumulator(
            self.kh, self.kw, self.full + (self.tail > 0), self.m, min_lane_bits
        )
        self.last_mask = last_word_mask(self.channels)
        self.peel_last = self.pad == PadValue.MINUS_ONE and self.tail == 0 and self.last_mask != 0xFF
        # Kernel-row runs.
        self.run: RunChunks | None = None
        self.run_plan: AccumulatorPlan | None = None
        if self.dw == 1 or self.kw == 1:
            run = run_chunks(self.kw * self.words, vector_bytes)
            if len(run.offsets) <= MAX_RUN_CHUNKS:
                self.run = run
                self.run_plan = plan_accumulator(
                    self.kh, 1, len(run.offsets), run.m, min_lane_bits
                )
        # Patches (interior positions, zero-masked loads).
        self.patch: PatchChunks | None = None
        self.patch_plan: AccumulatorPlan | None = None
        if self.run is not None and target.masked_loads:
            patch = patch_chunks(self.kh, self.kw * self.words, vector_bytes)
            if len(patch.pieces) <= MAX_PATCH_CHUNKS:
                plan = plan_accumulator(1, 1, len(patch.pieces), patch.m, min_lane_bits)
                if plan.flush == "none":
                    self.patch, self.patch_plan = patch, plan
        # Re-laid constant weights for full blocks (see weight_blocks): B*M bytes in one vector.
        self.blocked_weights = (
            target.popcount == "ctpop" and self.patch is not None and self.block == OUTPUT_BLOCK
            and self.block * self.patch.m <= vector_bytes
        )
        self.weight_blocks: tuple[str, MemRefType] | None = None
        self.rows = self.checked_rows(
            interior_range(self.h, self.oh, self.kh, self.sh, self.dh, self.pt))
        self.cols = interior_range(self.w, self.ow, self.kw, self.sw, self.dw, self.pl)
        # The register-blocked kernel of interior columns (bconv_plan): rows of contiguous taps.
        self.block_plan: BlockPlan | None = None
        if (self.dw == 1 or self.kw == 1) and self.kind != "threshold" and (
                large_enough_to_block(self.macs, min_blocked_macs) or forced_block() is not None):
            lo, hi = self.cols
            self.block_plan = plan_blocks(
                target.popcount, vector_bytes, target.masked_loads, self.kh, self.kw * self.words,
                self.o, hi - lo, self.rows != (0, self.oh), self.ow - (hi - lo), self.words)
        self.block_kernel: BlockKernel | None = None

    @property
    def macs(self) -> int:
        """Binary multiply-accumulates of the whole layer (padding taps included)."""
        return self.n * self.oh * self.ow * self.o * self.kh * self.kw * self.channels

    def checked_rows(self, interior: tuple[int, int]) -> tuple[int, int]:
        """The rows computed by the code without row bounds checks (:func:`rows_without_checks`:
        none on a small layer with border rows; a checked row adds a correction only for a tap
        row outside the input)."""
        return rows_without_checks(interior, self.oh, self.macs, self.min_unchecked_rows_macs)

    # Emission --------------------------------------------------------------------------------
    def emit(self, em: Emitter, parallel: bool, module_globals: ModuleGlobals) -> None:
        if self.block_plan is not None:
            self.block_kernel = self.make_block_kernel(module_globals)
        if self.blocked_weights:
            assert self.patch is not None
            self.weight_blocks = weight_blocks(self.op, self.patch, self.block, module_globals)
        rows = self.n * self.oh
        split = parallel and self.macs >= MIN_PARALLEL_MACS
        parts = self.channel_parts() if split else None
        if parts is not None and parts.count > 1:
            em.parallel(rows * parts.count, lambda e, u: self.unit(e, u, parts))
        elif split and rows > 1:
            em.parallel(rows, self.row)
        else:
            em.loop(0, rows, lambda e, r, _: self.row(e, r) or [])

    def channel_parts(self) -> ChannelParts | None:
        """The parts of a row's channel vectors that are parallel units of their own
        (:func:`channel_parts`); ``None`` (rows alone) unless the blocked kernel computes the
        row's interior, so never for a ``threshold`` output, whose bytes pack 8 channels. Only
        after :meth:`emit` made the kernel."""
        plan, rows = self.block_plan, self.n * self.oh
        if plan is None or self.block_kernel is None:
            return None
        lo, hi = self.cols
        steps, tree = len(plan.chunks), plan.per_vector == 1
        return channel_parts(rows, plan.channel_vectors, plan.vectors, lambda vectors: row_cost(
            plan.pixels, plan.vectors, steps, hi - lo, vectors, tree))

    def unit(self, em: Emitter, u: SSAValue, parts: ChannelParts) -> None:
        """Parallel unit ``u``: row ``u / count``, channel part ``u % count``. A last part of
        another size (or holding the channels past ``O``) is a branch of its own, so that every
        part's loops have constant bounds."""
        plan = self.block_plan
        assert plan is not None and parts.count > 1
        count, span, per_vector = parts.count, parts.span, plan.per_vector
        if self.n * self.oh == 1:
            r, p = em.index(0), u
        else:
            r = em.emit(arith.DivUIOp(u, em.index(count)))
            p = em.emit(arith.RemUIOp(u, em.index(count)))

        def part(e: Emitter, first: SSAValue, vectors: int, channels: int) -> None:
            self.row(e, r, RowPart((first, vectors), channels))

        if parts.last == span and self.o == plan.channel_vectors * per_vector:
            part(em, em.affine(p, span, 0), span, span * per_vector)
            return
        last = (count - 1) * span
        em.if_else(em.cmpi(p, em.index(count - 1), "eq"),
                   lambda e: part(e, e.index(last), parts.last, self.o - last * per_vector),
                   lambda e: part(e, e.affine(p, span, 0), span, span * per_vector))

    def make_block_kernel(self, module_globals: ModuleGlobals) -> BlockKernel | None:
        """The blocked kernel with its re-laid weights (``None`` unless the weights are a
        constant global)."""
        plan = self.block_plan
        constant = constant_weights(self.op)
        if plan is None or constant is None:
            return None
        weights, glob = constant
        cases = [frozenset()] + sorted({self.missing_columns(ow) for ow in self.border_columns()},
                                       key=sorted)
        relaid, corrections = add_block_globals(
            plan, weights, self.kw * self.words, int(self.pad), self.channels, cases,
            lambda stem, values, mtype: module_globals.add(stem, values, mtype, glob))
        return BlockKernel(plan, self.op.input, self.words, self.kh, self.sw, self.pl, self.dh,
                           self.h, self.o, self.channels * self.kh * self.kw, relaid, corrections,
                           self.kw, self.w, cases)

    def border_columns(self) -> list[int]:
        """The output columns the blocked kernel computes one by one (its plan says so)."""
        lo, hi = self.cols
        if self.block_plan is None or "columns" not in self.block_plan.border:
            return []
        return [*range(lo), *range(hi, self.ow)]

    def missing_columns(self, ow: int) -> frozenset[int]:
        """The kernel columns of output column ``ow`` outside the input."""
        iw0 = ow * self.sw - self.pl
        return frozenset(c for c in range(self.kw) if not 0 <= iw0 + c * self.dw < self.w)

    def row(self, em: Emitter, r: SSAValue, part: RowPart | None = None) -> None:
        """Output row ``r = n * OH + oh``: every channel, or those of ``part``."""
        if self.n == 1:
            n, oh = em.index(0), r
        elif self.oh == 1:
            n, oh = r, em.index(0)
        else:
            n = em.emit(arith.DivUIOp(r, em.index(self.oh)))
            oh = em.emit(arith.RemUIOp(r, em.index(self.oh)))
        lo, hi = self.rows
        if (lo, hi) == (0, self.oh):
            self.columns(em, n, oh, False, part)
        elif lo == hi:
            self.columns(em, n, oh, True, part)
        else:
            shifted = oh if lo == 0 else em.sub(oh, em.index(lo))
            inside = em.cmpi(shifted, em.index(hi - lo), "ult")
            em.if_else(
                inside,
                lambda e: self.columns(e, n, oh, False, part),
                lambda e: self.columns(e, n, oh, True, part),
            )

    def columns(self, em: Emitter, n: SSAValue, oh: SSAValue, check_h: bool,
                part: RowPart | None = None) -> None:
        """All output columns of one row: border, interior, border (every channel, or those of
        ``part``: the blocked kernel's vectors, the other paths' channels)."""
        ih0 = em.affine(oh, self.sh, -self.pt)
        lo, hi = self.cols
        regions = [(0, lo, True), (lo, hi, False), (hi, self.ow, True)] if lo < hi else [
            (0, self.ow, True)
        ]
        epilogue = Epilogue(
            lambda e, value, ow, o: self.store(e, value, [n, oh, ow, o]),
            (lambda e, values, ow, first: self.store_lanes(e, values, first, [n, oh, ow]))
            if self.lane_wise_output else None)
        vectors = None if part is None else part.vectors
        channels = None
        if part is not None:
            assert self.block_plan is not None and self.kind != "threshold"
            channels = (em.affine(part.vectors[0], self.block_plan.per_vector, 0), part.channels)
        for begin, end, check_w in regions:
            if check_w and self.block_kernel is not None and self.border_columns():
                for ow in range(begin, end):
                    self.block_kernel.border_column(em, n, ih0, ow, check_h, epilogue, vectors)
                continue
            if not check_w and self.block_kernel is not None:
                self.block_kernel.interior(em, n, ih0, begin, end, check_h, epilogue, vectors)
                continue

            def column(e: Emitter, ow: SSAValue, _: Sequence[SSAValue], check_w=check_w) -> list:
                iw0 = e.affine(ow, self.sw, -self.pl)
                if not check_w and not check_h and self.patch is not None:
                    patch = self.patch_vectors(e, n, ih0, iw0)
                    wide = self.repeated(e, patch) if self.weight_blocks is not None else None

                    def outputs(e2: Emitter, os: Sequence[SSAValue]) -> list[SSAValue]:
                        if wide is not None and len(os) == self.block:
                            return self.blocked_patch_outputs(e2, wide, os)
                        return self.patch_outputs(e2, patch, os)
                elif not check_w and self.run is not None:

                    def outputs(e2: Emitter, os: Sequence[SSAValue]) -> list[SSAValue]:
                        return self.run_outputs(e2, n, ih0, iw0, os, check_h)
                else:

                    def outputs(e2: Emitter, os: Sequence[SSAValue]) -> list[SSAValue]:
                        return self.tap_outputs(e2, n, ih0, iw0, os, check_h, check_w)

                if self.kind == "threshold":
                    self.store_bits(e, outputs, [n, oh, ow])
                else:
                    self.store_blocks(e, outputs, [n, oh, ow], channels)
                return []

            em.loop(begin, end, column)

    def blocks(self, em: Emitter, count: int, body: Callable[[Emitter, SSAValue, int], None],
               start: int = 0, base: SSAValue | None = None) -> None:
        """``body(e, first, size)`` over channels ``start .. count-1`` in blocks of ``B`` (a
        loop), then one block of the ``(count - start) % B`` left over; all of them offset by
        ``base`` when given."""
        b = self.block

        def at(e: Emitter, k: SSAValue) -> SSAValue:
            return k if base is None else e.add(base, k)

        full = start + (count - start) // b * b
        em.loop(start, full, lambda e, k, _: body(e, at(e, k), b) or [], step=b)
        if count > full:
            body(em, at(em, em.index(full)), count - full)

    @staticmethod
    def channels_from(em: Emitter, first: SSAValue, size: int) -> list[SSAValue]:
        return [first] + [em.add(first, em.index(j)) for j in range(1, size)]

    @property
    def lane_wise_output(self) -> bool:
        """The output transform has a lane-wise vector form (:meth:`store_lanes`)."""
        return self.kind in (None, "clip8") or (
            self.kind == "requant8" and self.affine_arrays is not None) or self.chain is not None

    def store_blocks(self, em: Emitter, outputs: Outputs, lead: list[SSAValue],
                     channels: tuple[SSAValue, int] | None = None) -> None:
        """The results of every channel at ``lead`` (or of the ``count`` channels from
        ``first`` of ``channels = (first, count)``), block by block."""
        base, count = (None, self.o) if channels is None else channels
        vectored = self.kind == "clip8" or (
            self.kind == "requant8" and self.affine_arrays is not None) or self.chain is not None

        def body(e: Emitter, first: SSAValue, size: int) -> None:
            os = self.channels_from(e, first, size)
            values = outputs(e, os)
            if vectored and size > 1:
                self.store_vector(e, values, first, lead)
                return
            for o, value in zip(os, values):
                self.store(e, value, [*lead, o])

        b = self.block
        wide = EPILOGUE_BLOCKS * b
        done = 0
        if vectored and b > 1 and count >= wide:
            # EPILOGUE_BLOCKS blocks share one epilogue of EPILOGUE_BLOCKS * B lanes.
            def wide_body(e: Emitter, first: SSAValue, _: Sequence[SSAValue]) -> list:
                first = first if base is None else e.add(base, first)
                values: list[SSAValue] = []
                for k in range(EPILOGUE_BLOCKS):
                    values += outputs(e, self.channels_from(e, e.add(first, e.index(k * b)), b))
                self.store_vector(e, values, first, lead)
                return []

            done = count // wide * wide
            em.loop(0, done, wide_body, step=wide)
        self.blocks(em, count, body, start=done, base=base)

    def store_vector(self, em: Emitter, values: Sequence[SSAValue], first: SSAValue,
                     lead: list[SSAValue]) -> None:
        """:meth:`store_lanes` of the scalar results ``values`` of channels ``first ..``."""
        acc = em.vector_const([0] * len(values), i32)
        for j, value in enumerate(values):
            acc = em.emit(vector.InsertOp(value, acc, [j]))
        self.store_lanes(em, acc, first, lead)

    def store_lanes(self, em: Emitter, acc: SSAValue, first: SSAValue,
                    lead: list[SSAValue]) -> None:
        """Store the ``vector<L x i32>`` results of channels ``first ..`` at ``lead``, through
        the fused ``clip8`` or affine ``requant8`` and the residual: the lane-wise form of
        :meth:`store`, equal to it on every lane (see the module docstring). Lanes of channels
        ``>= O`` (a last vector of 16 channels past ``O``) are neither read nor written."""
        b = acc.type.get_shape()[0]  # type: ignore[attr-defined]
        mask = None if self.o % b == 0 else lanes_below(em, b, em.sub(em.index(self.o), first))
        at = [*lead, first]
        if self.chain is not None:
            out = self.chain.emit(em, acc, first, b, lambda e, k: self.residual_lanes(e, at, b, mask))
        elif self.kind is None:
            out = acc
        else:
            if self.kind == "requant8":
                assert self.affine_arrays is not None
                acc = affine_requant_vector(em, acc, self.affine_arrays, first)
            else:
                acc = clamp_clip8(em, acc)
            out = em.emit(llvm.TruncOp(acc, VectorType(i8, [b])))
        if self.op.residual is not None and self.chain is None:
            out = clip8_add(em, out, self.residual_lanes(em, at, b, mask))
        if mask is None:
            em.emit(vector.StoreOp(out, self.op.out, at))  # type: ignore[arg-type]
        elif self.o % b == 1:
            # LLVM 22's x86 back end turns a truncating masked store whose mask is the constant
            # lane 0 into a 4-byte store (of the untruncated lane): the one-lane tail is a byte
            # store of its own.
            def tail(e: Emitter) -> None:
                lane = vector.ExtractOp(out, [0], out.type.get_element_type())  # type: ignore
                e.store(e.emit(lane), self.op.out, at)

            em.if_else(em.cmpi(em.add(first, em.index(1)), em.index(self.o), "eq"), tail,
                       lambda e: e.emit(vector.StoreOp(out, self.op.out, at)))  # type: ignore
        else:
            em.emit(vector.MaskedStoreOp(self.op.out, at, mask, out))  # type: ignore[arg-type]

    def residual_lanes(self, em: Emitter, at: list[SSAValue], b: int,
                       mask: SSAValue | None) -> SSAValue:
        """The ``b`` residual values at ``at`` (lanes off ``mask`` are not read, and zero)."""
        residual = self.op.residual
        assert residual is not None
        if mask is None:
            return em.vload(residual, at, b)
        elem = residual.type.get_element_type()  # type: ignore[attr-defined]
        zero = f32_splat(em, 0.0, b) if elem == f32 else em.vector_const([0] * b, i8)
        return em.emit(vector.MaskedLoadOp(residual, at, mask, zero))

    def store(self, em: Emitter, acc: SSAValue, at: list[SSAValue]) -> None:
        """Store one ``i32`` result at ``[n, oh, ow, o]``, through the fused ``clip8`` or
        ``requant8`` (of channel ``o``) when there is one, then the fused residual; or through
        the float chain of an ``f32`` output."""
        if self.chain is not None:
            residual = self.op.residual
            value = self.chain.emit(em, acc, at[-1], 1,
                                    lambda e, k: e.load(residual, at))  # type: ignore[arg-type]
            em.store(value, self.op.out, at)  # type: ignore[arg-type]
            return
        if self.kind == "requant8":
            assert self.requant is not None
            acc = self.requant(em, acc, at[-1])
        elif self.kind == "clip8":
            acc = em.emit(arith.TruncIOp(clamp_clip8(em, acc), i8))
        if self.op.residual is not None:
            # clip8(t + r): t and r in [-127, 127], the i32 sum is exact.
            total = em.add(em.emit(arith.ExtSIOp(acc, i32)),
                           em.emit(arith.ExtSIOp(em.load(self.op.residual, at), i32)))
            acc = em.emit(arith.TruncIOp(clamp_clip8(em, total), i8))
        em.store(acc, self.op.out, at)  # type: ignore[arg-type]

    def store_bits(self, em: Emitter, outputs: Outputs, lead: list[SSAValue]) -> None:
        """Fused threshold: the ``O`` results of one position, thresholded and packed 8 per byte
        (bit ``o % 8`` of word ``o // 8``; the unused high bits of the last word stay 0)."""
        tables = self.thresholds
        assert tables is not None
        full_words, rest = divmod(self.o, WORD_BITS)

        def word(e: Emitter, wo: SSAValue, bits: int) -> None:
            base = e.affine(wo, WORD_BITS, 0)

            def group(e2: Emitter, k: SSAValue, size: int, byte: SSAValue) -> SSAValue:
                """Bits ``k .. k+size-1`` of the word, ORed into ``byte``."""
                bits_at = self.channels_from(e2, k, size)
                os = [e2.add(base, b) for b in bits_at]
                for b, o, value in zip(bits_at, os, outputs(e2, os)):
                    minus = threshold_minus(e2, value, o, tables)
                    shift = e2.emit(arith.IndexCastOp(b, i32))
                    one = e2.emit(arith.ShLIOp(e2.emit(arith.ExtUIOp(minus, i32)), shift))
                    byte = e2.emit(arith.OrIOp(byte, one))
                return byte

            size = self.block
            full = bits // size * size
            (byte,) = e.loop(
                0, full, lambda e2, k, st: [group(e2, k, size, st[0])], [e.int(0, i32)], step=size
            )
            if bits > full:
                byte = group(e, e.index(full), bits - full, byte)
            e.store(e.emit(arith.TruncIOp(byte, i8)), self.op.out, [*lead, wo])  # type: ignore[arg-type]

        if full_words:
            em.loop(0, full_words, lambda e, wo, _: word(e, wo, WORD_BITS) or [])
        if rest:
            word(em, em.index(full_words), rest)

    # Per-tap path ----------------------------------------------------------------------------
    def tap_outputs(
        self,
        em: Emitter,
        n: SSAValue,
        ih0: SSAValue,
        iw0: SSAValue,
        os: Sequence[SSAValue],
        check_h: bool,
        check_w: bool,
    ) -> list[SSAValue]:
        """``K - 2*popcount`` (``i32``) of the outputs ``os`` at one position, tap by tap."""
        plan = self.tap_plan
        count_taps = self.pad == PadValue.ZERO and (check_h or check_w)
        # Carried through the tap loops: the accumulators, or the i32 totals when the chains are
        # flushed inside them; plus the number of in-range taps when it varies.
        zero = zero_acc(em, plan) if plan.flush == "none" else em.int(0, i32)
        carried = [zero] * len(os) + ([em.int(0, i32)] if count_taps else [])
        block_bound = plan.chain_steps * self.m * 8  # a flushed block sums <= 8 bits per byte
        k = len(os)

        def tap_row(e: Emitter, kh: SSAValue, state: Sequence[SSAValue]) -> list[SSAValue]:
            ih = e.add(ih0, e.affine(kh, self.dh, 0))
            ok_h = e.cmpi(ih, e.index(self.h), "ult") if check_h else None
            ih_safe = e.select(ok_h, ih, e.index(0)) if ok_h is not None else ih

            def tap(e2: Emitter, kw: SSAValue, inner: Sequence[SSAValue]) -> list[SSAValue]:
                iw = e2.add(iw0, e2.affine(kw, self.dw, 0))
                ok_w = e2.cmpi(iw, e2.index(self.w), "ult") if check_w else None
                iw_safe = e2.select(ok_w, iw, e2.index(0)) if ok_w is not None else iw
                if ok_h is None or ok_w is None:
                    ok = ok_h if ok_w is None else ok_w
                else:
                    ok = e2.emit(arith.AndIOp(ok_h, ok_w))
                accs = [zero_acc(e2, plan)] * k if plan.flush == "tap" else list(inner[:k])
                accs = self.tap_chain(e2, accs, [n, ih_safe, iw_safe], os, [kh, kw], ok)
                if plan.flush == "tap":
                    accs = [e2.add(t, a) for t, a in
                            zip(inner[:k], self.lane_sums(e2, plan, accs, block_bound))]
                if count_taps:
                    assert ok is not None
                    accs.append(e2.add(inner[k], e2.emit(arith.ExtUIOp(ok, i32))))
                return accs

            if plan.flush == "row":
                init = [zero_acc(e, plan)] * k + list(state[k:])
                result = e.loop(0, self.kw, tap, init)
                sums = [e.add(t, a) for t, a in
                        zip(state[:k], self.lane_sums(e, plan, result[:k], block_bound))]
                return sums + result[k:]
            return e.loop(0, self.kw, tap, state)

        final = em.loop(0, self.kh, tap_row, carried)
        count = final[k] if count_taps else None
        return self.finish(em, plan, final[:k], count, self.channels)

    def lane_sums(self, em: Emitter, plan: AccumulatorPlan, accs: Sequence[SSAValue],
                  bound: int) -> list[SSAValue]:
        """See :func:`sums_together`: only when each accumulator fills a whole vector."""
        wide = plan.lanes * plan.lane_bits >= 8 * self.vector_bytes
        return lane_sums(em, plan, accs, bound, self.sums_together and wide)

    def finish(self, em: Emitter, plan: AccumulatorPlan, totals: Sequence[SSAValue],
               count: SSAValue | None, per_count: int) -> list[SSAValue]:
        """``K - 2*popcount`` per output; ``K = per_count * count`` when counted, else the fan-in."""
        # By the bit convention only the C valid bits of a tap can differ: popcount <= K.
        fan_in = self.channels * self.kh * self.kw
        popcounts = (self.lane_sums(em, plan, totals, fan_in) if plan.flush == "none"
                     else list(totals))
        return self.outputs_from(em, popcounts, count, per_count)

    def outputs_from(self, em: Emitter, popcounts: Sequence[SSAValue], count: SSAValue | None,
                     per_count: int) -> list[SSAValue]:
        """``K - 2*popcount`` per output (see :meth:`finish`)."""
        fan_in = self.channels * self.kh * self.kw
        k = em.int(fan_in, i32) if count is None else em.mul(count, em.int(per_count, i32))
        results = []
        for popcount in popcounts:
            twice = em.emit(arith.ShLIOp(popcount, em.int(1, i32)))
            results.append(em.sub(k, twice))
        return results

    def tap_chain(
        self,
        em: Emitter,
        accs: list[SSAValue],
        x_at: list[SSAValue],
        os: Sequence[SSAValue],
        w_tap: list[SSAValue],
        ok: SSAValue | None,
    ) -> list[SSAValue]:
        """``narrow_acc`` over the ``Cb`` bytes of one tap for each output: full chunks, then
        the tail."""
        m = self.m
        x, w = self.op.input, self.op.weight
        steps = self.tap_plan.chain_steps

        def step(e: Emitter, state: Sequence[SSAValue], a: SSAValue, bs: list[SSAValue],
                 last_byte_at: int | None) -> list[SSAValue]:
            a_each = self.padded(e, ok, a, bs, m, lambda: self.tap_padding(e, m, last_byte_at))
            return [e.emit(NarrowAccOp(acc, ai, b, steps)) for acc, ai, b in zip(state, a_each, bs)]

        def chunk(
            e: Emitter, offset: SSAValue, state: Sequence[SSAValue], last: bool = False
        ) -> list[SSAValue]:
            a = e.vload(x, [*x_at, offset], m)
            bs = [e.vload(w, [o, *w_tap, offset], m) for o in os]
            return step(e, state, a, bs, m if last else None)

        looped = self.full - 1 if self.peel_last else self.full
        accs = em.loop(0, looped * m, chunk, accs, step=m)
        if self.peel_last:
            accs = chunk(em, em.index(looped * m), accs, last=True)
        if self.tail:
            a = self.zero_bytes(em, m)
            bs = [self.zero_bytes(em, m) for _ in os]
            for i in range(self.tail):
                at = em.index(self.full * m + i)
                a = em.emit(vector.InsertOp(em.load(x, [*x_at, at]), a, [i]))
                bs = [em.emit(vector.InsertOp(em.load(w, [o, *w_tap, at]), b, [i]))
                      for o, b in zip(os, bs)]
            accs = step(em, accs, a, bs, self.tail)
        return accs

    def padded(self, em: Emitter, ok: SSAValue | None, a: SSAValue, bs: list[SSAValue], m: int,
               padding: Callable[[], SSAValue]) -> list[SSAValue]:
        """The activation vector of each output: ``a`` if ``ok`` (or unchecked), else the
        padding: the output's own weight vector for ``pad_value = 0``, else ``padding()``."""
        if ok is None:
            return [a] * len(bs)
        if self.pad == PadValue.ZERO:
            return [em.select(ok, a, b) for b in bs]
        return [em.select(ok, a, padding())] * len(bs)

    @staticmethod
    def zero_bytes(em: Emitter, m: int) -> SSAValue:
        return em.vector_const([0] * m, i8)

    def tap_padding(self, em: Emitter, m: int, last_byte_at: int | None) -> SSAValue:
        """Out-of-range activation bytes of a chunk of one tap (``pad_value`` +1 or -1;
        ``last_byte_at``: bytes up to and including the tap's last byte, when this chunk holds
        it)."""
        if self.pad == PadValue.PLUS_ONE:
            return self.zero_bytes(em, m)
        if last_byte_at is None:
            return em.vector_const([0xFF] * m, i8)
        values = [0xFF] * (last_byte_at - 1) + [self.last_mask] + [0] * (m - last_byte_at)
        return em.vector_const(values, i8)

    # Kernel-row runs -------------------------------------------------------------------------
    def run_padding(self, em: Emitter, offset: int, m: int) -> SSAValue:
        """Out-of-range activation bytes at ``offset`` of a run (``pad_value`` +1 or -1)."""
        if self.pad == PadValue.PLUS_ONE:
            return self.zero_bytes(em, m)
        cb = self.words
        values = [self.last_mask if (offset + i) % cb == cb - 1 else 0xFF for i in range(m)]
        return em.vector_const(values, i8)

    def run_outputs(
        self,
        em: Emitter,
        n: SSAValue,
        ih0: SSAValue,
        iw0: SSAValue,
        os: Sequence[SSAValue],
        check_h: bool,
    ) -> list[SSAValue]:
        """``K - 2*popcount`` (``i32``) of the outputs ``os`` at an interior column, one
        contiguous run of ``KW*Cb`` bytes per kernel row."""
        run, plan = self.run, self.run_plan
        assert run is not None and plan is not None
        m, cb, k = run.m, self.words, len(os)
        x, w = self.op.input, self.op.weight
        count_rows = self.pad == PadValue.ZERO and check_h
        zero = zero_acc(em, plan) if plan.flush == "none" else em.int(0, i32)
        carried = [zero] * k + ([em.int(0, i32)] if count_rows else [])
        block_bound = plan.chain_steps * m * 8
        keep = None
        if run.overlap:
            keep = em.vector_const([0] * run.overlap + [0xFF] * (m - run.overlap), i8)

        def kernel_row(e: Emitter, kh: SSAValue, state: Sequence[SSAValue]) -> list[SSAValue]:
            ih = e.add(ih0, e.affine(kh, self.dh, 0))
            ok = e.cmpi(ih, e.index(self.h), "ult") if check_h else None
            ih_safe = e.select(ok, ih, e.index(0)) if ok is not None else ih
            accs = [zero_acc(e, plan)] * k if plan.flush != "none" else list(state[:k])
            last = len(run.offsets) - 1
            columns: dict[int, SSAValue] = {}
            for i, offset in enumerate(run.offsets):
                tap, byte = divmod(offset, cb)
                at_tap = e.index(tap)
                if tap not in columns:
                    columns[tap] = e.add(iw0, at_tap)
                a = e.vload(x, [n, ih_safe, columns[tap], e.index(byte)], m)
                bs = [e.vload(w, [o, kh, at_tap, e.index(byte)], m) for o in os]
                a_each = self.padded(e, ok, a, bs, m, lambda: self.run_padding(e, offset, m))
                if i == last and keep is not None:
                    masked = {}
                    a_each = [masked.setdefault(ai, e.emit(arith.AndIOp(ai, keep)))
                              for ai in a_each]
                    bs = [e.emit(arith.AndIOp(b, keep)) for b in bs]
                accs = [e.emit(NarrowAccOp(acc, ai, b, plan.chain_steps))
                        for acc, ai, b in zip(accs, a_each, bs)]
            if plan.flush != "none":
                accs = [e.add(t, a) for t, a in
                        zip(state[:k], self.lane_sums(e, plan, accs, block_bound))]
            if count_rows:
                assert ok is not None
                accs.append(e.add(state[k], e.emit(arith.ExtUIOp(ok, i32))))
            return accs

        final = em.loop(0, self.kh, kernel_row, carried)
        count = final[k] if count_rows else None
        return self.finish(em, plan, final[:k], count, self.channels * self.kw)

    # Patches ---------------------------------------------------------------------------------
    def masked_vload(self, em: Emitter, ref: SSAValue, at: list[SSAValue], first: int,
                     lanes: int, into: SSAValue | None = None) -> SSAValue:
        """``M`` bytes: lanes ``first .. first+lanes-1`` read from ``at`` + lane, the others
        from ``into`` (zeros when ``None``) and not accessed. A full mask is a plain load."""
        m = self.patch.m  # type: ignore[union-attr]
        if (first, lanes) == (0, m):
            return em.vload(ref, at, m)
        bits = (0,) * first + (1,) * lanes + (0,) * (m - first - lanes)
        mask = em.pool.get(("lane mask", bits), lambda: arith.ConstantOp(
            DenseIntOrFPElementsAttr.from_list(VectorType(i1, [m]), bits)))
        passthru = self.zero_bytes(em, m) if into is None else into
        return em.emit(vector.MaskedLoadOp(ref, at, mask, passthru))

    def patch_vectors(self, em: Emitter, n: SSAValue, ih0: SSAValue,
                      iw0: SSAValue) -> list[SSAValue]:
        """The ``Q`` activation vectors of the window at an interior position."""
        patch = self.patch
        assert patch is not None
        x = self.op.input
        rows = [em.add(ih0, em.index(r * self.dh)) if r else ih0 for r in range(self.kh)]
        columns: dict[int, SSAValue] = {0: iw0}
        vectors = []
        for j, pieces in enumerate(patch.pieces):
            v: SSAValue | None = None
            for piece in pieces:
                # Lane p of the load is run byte p + shift of row r; a negative shift starts
                # before the run, at lanes that are masked off.
                tap, byte = divmod(j * patch.m - piece.row * patch.run_bytes, self.words)
                if tap not in columns:
                    columns[tap] = em.add(iw0, em.index(tap))
                at = [n, rows[piece.row], columns[tap], em.index(byte)]
                v = self.masked_vload(em, x, at, piece.first, piece.lanes, v)
            assert v is not None
            vectors.append(v)
        return vectors

    def patch_outputs(self, em: Emitter, patch_vectors: Sequence[SSAValue],
                      os: Sequence[SSAValue]) -> list[SSAValue]:
        """``K - 2*popcount`` (``i32``) of the outputs ``os`` at an interior position: vector
        ``j`` of the window against weight bytes ``j*M ..`` of each channel."""
        patch, plan = self.patch, self.patch_plan
        assert patch is not None and plan is not None
        w = self.op.weight
        accs = [zero_acc(em, plan)] * len(os)
        for j, a in enumerate(patch_vectors):
            row, rest = divmod(j * patch.m, patch.run_bytes)
            at = [em.index(i) for i in (row, *divmod(rest, self.words))]
            bs = [self.masked_vload(em, w, [o, *at], 0, patch.valid(j)) for o in os]
            accs = [em.emit(NarrowAccOp(acc, a, b, plan.chain_steps)) for acc, b in zip(accs, bs)]
        return self.finish(em, plan, accs, None, self.channels)


    # Blocked weights ----------------------------------------------------------------------------
    def repeated(self, em: Emitter, patch_vectors: Sequence[SSAValue]) -> list[SSAValue]:
        """Each window vector repeated ``B`` times: ``vector<B*M x i8>``, lane ``b*M + p`` is
        lane ``p``."""
        m, b = self.patch.m, self.block  # type: ignore[union-attr]
        mask = DenseArrayBase.from_list(i64, [p for _ in range(b) for p in range(m)])
        return [em.emit(vector.ShuffleOp(a, a, mask, result_type=VectorType(i8, [b * m])))
                for a in patch_vectors]

    def blocked_patch_outputs(self, em: Emitter, wide: Sequence[SSAValue],
                              os: Sequence[SSAValue]) -> list[SSAValue]:
        """``K - 2*popcount`` of a full block ``os = o0 .. o0+B-1`` (``o0 % B == 0``) at an
        interior position, the ``B`` outputs in one accumulator (see :func:`weight_blocks`)."""
        patch, plan = self.patch, self.patch_plan
        assert patch is not None and plan is not None and self.weight_blocks is not None
        b, lane_type = self.block, IntegerType(plan.lane_bits)
        ref = em.get_global(*self.weight_blocks)
        ob = em.emit(arith.DivUIOp(os[0], em.index(b)))
        acc = em.vector_const([0] * (b * plan.lanes), lane_type)
        for j, a in enumerate(wide):
            w = em.vload(ref, [ob, em.index(j), em.index(0)], b * patch.m)
            acc = em.emit(NarrowAccOp(acc, a, w, plan.chain_steps))
        sums = transposed_lane_sums(em, [acc], b * plan.lanes, lane_type, segments=b)
        if plan.lane_bits != 32:
            sums = [em.emit(arith.ExtUIOp(t, i32)) for t in sums]
        return self.outputs_from(em, sums, None, self.channels)


def constant_weights(op: BConv2dOp) -> tuple[np.ndarray, memref.GlobalOp] | None:
    """The packed weights ``[O, KH, KW, Cb]`` of ``op`` and their global, when they are a
    constant ``memref.global`` (``None`` otherwise)."""
    source = op.weight.owner
    if not isinstance(source, memref.GetGlobalOp):
        return None
    glob = SymbolTable.lookup_symbol(op, source.name_)
    if not isinstance(glob, memref.GlobalOp) or glob.constant is None:
        return None
    init = glob.initial_value
    if not isinstance(init, DenseIntOrFPElementsAttr):
        return None
    shape = op.weight.type.get_shape()  # type: ignore[union-attr]
    return dense_to_numpy(init).reshape(shape), glob  # a splat is expanded
EPILOGUE_BLOCKS = 4
"""Blocks of ``B`` output channels whose results go through one vector epilogue together (16
lanes for ``B = 4``: a whole 512-bit ``i32`` vector), so the epilogue's fixed cost is shared."""

MIN_PARALLEL_MACS = 1 << 21
"""Binary MACs below which a layer runs on one thread: a few microseconds of work, where a split
over two threads would save less than a parallel-for (spinning workers: under a microsecond)
and the moved cache lines cost. Measured (AVX-512, two threads): Bi-Real-Net-18's 1x1 stride-2
shortcuts (6.4 M MACs, ~30 us) ran 0.75-0.9x on one thread of a 2-thread program, its data left
in the other core's cache by the row-split layer before."""

SPLIT_THREADS = (2, 4)
"""The thread counts the parallel units of a layer are balanced for. The lowering does not know
the count (``parallel`` is a flag, and a program's ``threads`` can be changed after compiling),
so the split is made for the common ones."""
MAX_IMBALANCE = 1.1
"""Largest time of a parallel loop over its ideal (the unsplit work over the threads) taken as
balanced."""
MAX_CHANNEL_PARTS = 8


@dataclass(frozen=True)
class ChannelParts:
    """A row's ``V`` output channel vectors cut into ``count`` contiguous parts: ``span``
    vectors each, the last one the ``last = V - (count - 1) * span`` left."""

    count: int
    span: int
    last: int

    def sizes(self) -> list[int]:
        return [self.span] * (self.count - 1) + [self.last]


def chunk_loads(costs: Sequence[float], threads: int) -> list[float]:
    """The work of each thread when ``bnnmlir_parallel_for`` runs units of ``costs`` (in order)
    on ``threads`` threads: ``min(n, threads)`` contiguous chunks whose unit counts differ by at
    most one, the first ``n % chunks`` the longer ones (``run_chunk`` in runtime/parallel.c)."""
    n = len(costs)
    chunks = min(n, threads)
    base, extra = divmod(n, chunks)
    loads, begin = [], 0
    for index in range(chunks):
        end = begin + base + (index < extra)
        loads.append(sum(costs[begin:end]))
        begin = end
    return loads


def channel_parts(rows: int, channel_vectors: int, block: int, cost: Callable[[int], float],
                  threads: Sequence[int] = SPLIT_THREADS) -> ChannelParts:
    """How to cut each output row of a blocked convolution into parallel units.

    The runtime deals the units of an ``scf.parallel`` out as contiguous chunks of equal counts
    (:func:`chunk_loads`), so rows alone balance only when they are many or a multiple of the
    threads: the 7 rows of a 7x7 layer are 4 + 3 on two threads (the layer takes 4/3.5 = 1.14
    of its ideal time, measured 1.56-1.66x instead of 1.9x on the 512-channel stage-4 layers)
    and 2+2+2+1 on four. A unit is then one row and one part of its channel vectors, row-major
    (``u = row * count + part``), so unequal parts alternate within each thread's chunk.

    The time of a split on ``k`` threads is its busiest chunk, each unit costing ``cost(its
    vectors)`` (``bconv_plan.row_cost``: whole blocks, then the partial block of the part),
    over the ideal ``rows * cost(V) / k``; this counts both the imbalance and the partial
    blocks the cut adds. Rows alone are kept when their time is within :data:`MAX_IMBALANCE`
    on every count of :data:`SPLIT_THREADS`; else the fewest parts within it (the best of
    their cuts), or failing that the least worst time (then mean over the counts). Cuts of
    ``count`` parts: spans of whole blocks (``B`` vectors) just below or above ``V / count``,
    or of ``ceil(V / count)`` vectors (equal parts, a partial block each). A span is at least
    ``2*B`` and the last part at least ``B`` vectors: a part of one block would make that
    block's weight loads invariant in the pixel loop, which LLVM hoists into spills (the
    channel tile of :mod:`~bnnmlir.passes.loops.bconv_plan`). Measured (AVX-512, two threads,
    one layer): 7x7x512 3x3, ``B = 3``: 4 parts of 8, 1.66x -> 1.89x; the stride-2 one,
    ``B = 5``: 2 parts of 15 + 17 1.88x against 1.77x for 20 + 12 (their 3.5% imbalance).
    14 rows: 2 parts on four threads (4+4+3+3 rows), no change on two."""
    whole = ChannelParts(1, channel_vectors, channel_vectors)
    ideal = rows * cost(channel_vectors)

    def score(parts: ChannelParts) -> tuple[float, float]:
        units = [cost(size) for _ in range(rows) for size in parts.sizes()]
        times = [max(chunk_loads(units, k)) * k / ideal for k in threads]
        return max(times), sum(times) / len(times)

    best, best_score = whole, score(whole)
    if best_score[0] <= MAX_IMBALANCE:
        return whole
    for count in range(2, MAX_CHANNEL_PARTS + 1):
        aligned = channel_vectors // (count * block) * block
        scored = []
        for span in sorted({aligned, aligned + block, -(-channel_vectors // count)}):
            last = channel_vectors - (count - 1) * span
            if span >= 2 * block and last >= block:
                parts = ChannelParts(count, span, last)
                scored.append((score(parts), parts))
        if not scored:
            continue
        cut_score, parts = min(scored, key=lambda scored_parts: scored_parts[0])
        if cut_score[0] <= MAX_IMBALANCE:
            return parts
        if cut_score < best_score:
            best, best_score = parts, cut_score
    return best


def weight_blocks(op: BConv2dOp, patch: PatchChunks, block: int, module_globals: ModuleGlobals
                  ) -> tuple[str, MemRefType] | None:
    """The weights of ``op`` re-laid for the patches path, when they are a constant global.

    ``wb[q, j, b*M + p] = w[q*B + b]`` at window byte ``t = j*M + p`` (0 for ``t >= T``), shape
    ``[O // B, Q, B*M]``: vector ``j`` of the ``B`` channels of block ``q`` is one contiguous load
    of ``B*M`` bytes. Against the window vector ``j`` repeated ``B`` times, lane group ``b`` of a
    ``narrow_acc`` only sees channel ``q*B + b``; the bytes past ``T`` are 0 in both operands.
    The accumulator holds the ``B`` outputs in runs of ``L`` lanes, each bounded as one output's
    (same chain, same ``max_steps``), summed by :func:`transposed_lane_sums` with ``B``
    segments. ``None`` when the weights are not a constant ``memref.global``; the re-laid copy
    is a new global placed before the weights' own."""
    constant = constant_weights(op)
    if constant is None:
        return None
    weights, glob = constant
    o = op.weight.type.get_shape()[0]  # type: ignore[union-attr]
    t, m, q = patch.patch_bytes, patch.m, len(patch.pieces)
    weights = weights.reshape(o, t)
    padded = np.zeros((o, q * m), dtype=weights.dtype)
    padded[:, :t] = weights
    whole = o // block * block  # the channels of whole blocks
    blocked = padded[:whole].reshape(o // block, block, q, m).transpose(0, 2, 1, 3)
    mtype = MemRefType(i8, [o // block, q, block * m])
    return module_globals.add("__bnn_wblocks", blocked, mtype, glob), mtype


def lower_bconv2d(em: Emitter, op: BConv2dOp, ctx: LoweringContext) -> None:
    """Emit the loop nest of the buffer-form ``op``, with its fused output transform: the
    thresholds and directions of a ``threshold`` output, the per-element map of a ``requant8``
    output, as constant globals."""
    thresholds = requant = arrays = chain = None
    if op.output_kind == "f32":
        assert op.steps is not None
        chain = ChainCode(op.steps, op.output_type().get_shape()[-1], ctx.add_global)
    elif op.output_kind == "threshold":
        assert op.thresholds is not None and op.directions is not None
        thresholds = threshold_tables(em, ctx, list(op.thresholds.get_values()),
                                      list(op.directions.get_values()))
    elif op.output_kind == "requant8":
        channels = op.output_type().get_shape()[-1]
        requant = requant8_epilogue(em, ctx.add_global, op.requant_params, channels)
        arrays = affine_arrays(ctx.add_global, op.requant_params, channels, op.fan_in)
    ConvLowering(op, ctx.target, thresholds, requant=requant, affine_arrays=arrays,
                 chain=chain, min_unchecked_rows_macs=ctx.min_unchecked_rows_macs,
                 min_blocked_macs=ctx.min_blocked_macs).emit(
        em, ctx.parallel, ctx.globals)


__all__ = [
    "ChannelParts",
    "ConvLowering",
    "MIN_PARALLEL_MACS",
    "RunChunks",
    "block_plan",
    "channel_parts",
    "chunk_loads",
    "constant_weights",
    "chunk_bytes",
    "conv_plans",
    "patch_plan",
    "interior_range",
    "lower_bconv2d",
    "needs_bounds_check",
    "run_chunks",
    "sums_together",
    "transposed_lane_sums",
    "transposed_sum_plan",
    "weight_blocks",
]
