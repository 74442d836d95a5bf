"""Emission of the register-blocked binary convolution kernel of a :class:`BlockPlan`.

For the plan (:mod:`bnnmlir.passes.loops.bconv_plan`) of a ``bnn.bconv2d`` and one output row,
the interior columns ``[lo, hi)`` are computed as::

    for each tile of channel vectors:                 (weights of a tile stay in L1)
      for ow0 in lo, lo+P, ..  (the last partial tile of P' < P pixels statically)
        for each block of B channel vectors of the tile (the last partial block statically)
          acc[p][b] = 0
          for each chunk j (kernel rows in a loop, the chunks of a row in unrolled groups):
            a[p] = chunk j of pixel ow0 + p, repeated V times       (P loads)
            w[b] = re-laid weights of vector b, chunk j             (B loads)
            acc[p][b] = narrow_acc(acc[p][b], a[p], w[b])
          lane sums of all P*B accumulators together (a shuffle-add tree)
          out = K - 2*popcount (+ border correction) -> the epilogue, per channel < O

Re-laid weights ``wv[v, j, c*M + l] = w[v*V + c]`` at window byte of chunk ``j``, lane ``l`` (0 for
lanes outside the chunk's pieces, for the zeroed overlap of a row's last chunk and for channels
``>= O``). The activations of those lanes are zero too (masked or ANDed), except for channels
``>= O``, whose outputs are never stored.

Lane sums (:func:`block_lane_sums`): each accumulator holds ``V`` outputs in runs of ``L/V``
lanes (one lane each on the ``ctpop`` targets: nothing to sum); pairs of vectors are combined by two shuffles and an add, level by level, so that a lane
only ever adds lanes of its own output (every partial sum is at most that output's popcount,
``<= 8*T``; 8-bit lanes are first widened pairwise when ``8*T`` does not fit them). The pairing
is even/odd lanes of the concatenation on NEON (one ``addp``) and halves on x86 (whole 128-bit
lanes move: ``vshufi64x2``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from xdsl.dialects import arith, llvm, memref, vector
from xdsl.dialects.builtin import (
    DenseArrayBase,
    DenseIntOrFPElementsAttr,
    IntegerType,
    MemRefType,
    VectorType,
    i1,
    i8,
    i32,
    i64,
)
from xdsl.ir import SSAValue

from bnnmlir.dialects.bnn import NarrowAccOp
from bnnmlir.passes.loops.bconv_plan import BlockPlan, Chunk, Piece, border_correction
from bnnmlir.passes.loops.emitter import Emitter

ScalarEpilogue = Callable[[Emitter, SSAValue, SSAValue, SSAValue], None]
"""``store(e, value, ow, o)``: store the ``i32`` result of channel ``o`` at column ``ow``."""
VectorEpilogue = Callable[[Emitter, SSAValue, SSAValue, SSAValue], None]
"""``store(e, values, ow, first)``: store the ``vector<L x i32>`` results of channels ``first ..
first+L-1`` at column ``ow`` (the lanes of channels ``>= O`` are not stored)."""


VectorRange = tuple[SSAValue, int]
"""``(first, count)``: the channel vectors ``first .. first+count-1`` of a row (any ``first``:
the re-laid weights are read per vector and the corrections per channel)."""


@dataclass(frozen=True)
class Epilogue:
    """Where the results of a block go: one output at a time, or (when the output transform has
    a lane-wise form) the results of consecutive channels of one pixel as one vector, so that a
    block's epilogue is a few vector ops instead of one scalar transform per output."""

    scalar: ScalarEpilogue
    vector: VectorEpilogue | None = None


def relaid_weights(plan: BlockPlan, w: np.ndarray, run: int) -> np.ndarray:
    """``wv`` of the module docstring, ``[channel_vectors, Q, vector_bytes]`` bytes, from the
    packed weights ``w`` ``[O, KH, KW, Cb]``."""
    o = w.shape[0]
    rows = w.reshape(o, -1, run)
    v = plan.per_vector
    m = plan.chunk_bytes
    out = np.zeros((plan.channel_vectors * v, len(plan.chunks), m), dtype=w.dtype)
    for j, chunk in enumerate(plan.chunks):
        for piece in chunk.pieces:
            lanes = slice(piece.first, piece.first + piece.lanes)
            out[:o, j, lanes] = rows[:, piece.row, piece.offset : piece.offset + piece.lanes]
        out[:, j, : chunk.keep] = 0
    out = out.reshape(plan.channel_vectors, v, len(plan.chunks), m).transpose(0, 2, 1, 3)
    return out.reshape(plan.channel_vectors, len(plan.chunks), plan.vector_bytes)


def tap_popcounts(w: np.ndarray) -> np.ndarray:
    """``pw[o, r, c]``: set bits of channel ``o``'s weights at tap ``(r, c)`` (``w`` packed
    ``[O, KH, KW, Cb]``)."""
    bits = np.unpackbits(w.view(np.uint8).reshape(*w.shape[:3], -1), axis=3)
    return bits.sum(axis=3).astype(np.int64)


def skipped_chunks(plan: BlockPlan, words: int, missing: frozenset[int]) -> list[int]:
    """The chunks whose every byte lies in a kernel column of ``missing``: a border column does
    not compute them at all."""
    if not missing:
        return []
    return [j for j, chunk in enumerate(plan.chunks)
            if all((p.offset + i) // words in missing for p in chunk.pieces
                   for i in range(p.lanes))]


def chunk_popcounts(relaid: np.ndarray, plan: BlockPlan, chunks: Sequence[int]) -> np.ndarray:
    """Per channel, the set bits of its re-laid weights in ``chunks``."""
    wv = relaid.reshape(plan.channel_vectors, len(plan.chunks), plan.per_vector, -1)
    picked = wv[:, list(chunks)].view(np.uint8)
    return np.unpackbits(picked, axis=3).sum(axis=(1, 3)).reshape(-1).astype(np.int64)


def correction_table(pad: int, w: np.ndarray, channels: int, bits_per_tap: int,
                     column_cases: Sequence[frozenset[int]],
                     skipped: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """``[cases, KH + 1, channels]`` ``i32`` corrections (0 for the padding channels).

    The correction of a tap outside the input, :func:`border_correction` of its weights, is
    linear in the tap's popcount and bits, so the correction of a set of missing taps is the sum
    over them. Case ``k`` has the kernel columns ``S = column_cases[k]`` outside the input (a
    border column, known at compile time); entry ``r < KH`` is the correction of kernel row ``r``
    less its taps in ``S`` (added when the row is outside the input), entry ``KH`` the one of
    the columns in ``S`` over all rows (always added): together every missing tap once.

    A chunk not computed at all (:func:`skipped_chunks`) counts 0 instead of the popcount of its
    weights: ``skipped[k]``, those popcounts per channel, come off entry ``KH`` twice."""
    pw = tap_popcounts(w)
    o, kh, kw = pw.shape
    delta = np.array(border_correction(pad, list(pw.ravel()), bits_per_tap)).reshape(o, kh, kw)
    table = np.zeros((len(column_cases), kh + 1, channels), dtype=np.int64)
    for k, missing in enumerate(column_cases):
        cols = np.array([c in missing for c in range(kw)])
        table[k, :kh, :o] = delta[:, :, ~cols].sum(axis=2).T
        table[k, kh, :o] = delta[:, :, cols].sum(axis=(1, 2))
        if skipped is not None:
            table[k, kh] -= 2 * skipped[k][:channels]
    return table.astype(np.int32)


def pairing_masks(lanes: int, seg: int, pairing: str) -> tuple[list[int], list[int]]:
    """The two shuffles of a pair ``(a, b)`` of ``lanes``-lane vectors whose outputs hold ``seg``
    lanes each: their sum holds the outputs of ``a`` then of ``b`` in ``seg/2`` lanes each."""
    if pairing == "even_odd":
        return list(range(0, 2 * lanes, 2)), list(range(1, 2 * lanes, 2))
    half = seg // 2

    def take(upper: bool) -> list[int]:
        start = half if upper else 0
        return [base + s * seg + start + i for base in (0, lanes)
                for s in range(lanes // seg) for i in range(half)]

    return take(False), take(True)


def block_lane_sums(em: Emitter, accs: Sequence[SSAValue], lanes: int, lane_type: IntegerType,
                    segments: int, pairing: str) -> list[SSAValue]:
    """Per output (accumulator-major, segment-minor) its lane sum, in ``lane_type``: exact when
    every output's sum fits ``lane_type`` (lanes are unsigned and only lanes of one output are
    added together)."""

    def shuffle(a: SSAValue, b: SSAValue, mask: list[int]) -> SSAValue:
        return em.emit(vector.ShuffleOp(a, b, DenseArrayBase.from_list(i64, mask),
                                        result_type=VectorType(lane_type, [len(mask)])))

    zero = em.vector_const([0] * lanes, lane_type)
    vs = list(accs) + [zero] * ((1 << (len(accs) - 1).bit_length()) - len(accs))
    seg = lanes // segments
    while len(vs) > 1 and seg >= 2:
        lo, hi = pairing_masks(lanes, seg, pairing)
        vs = [em.emit(arith.AddiOp(shuffle(a, b, lo), shuffle(a, b, hi)))
              for a, b in zip(vs[::2], vs[1::2])]
        seg //= 2
    width = lanes
    while seg >= 2:  # one vector left: halve it onto itself
        lo, hi = pairing_masks(width, seg, pairing)
        v = vs[0]
        vs = [em.emit(arith.AddiOp(shuffle(v, v, lo[: width // 2]), shuffle(v, v, hi[: width // 2])))]
        width, seg = width // 2, seg // 2
    per_vector = width // seg
    return [em.emit(vector.ExtractOp(vs[i // per_vector], [i % per_vector], lane_type))
            for i in range(len(accs) * segments)]


def widen_pairs(em: Emitter, acc: SSAValue, lanes: int, bits: int, neon: bool) -> SSAValue:
    """Adjacent lanes summed into lanes of twice the width (NEON ``uaddlp``)."""
    wide = VectorType(IntegerType(2 * bits), [lanes // 2])
    if neon:
        name = f"llvm.aarch64.neon.uaddlp.v{lanes // 2}i{2 * bits}.v{lanes}i{bits}"
        return em.emit(llvm.CallIntrinsicOp(name, [acc], [wide]))
    halves = []
    for start in (0, 1):
        mask = DenseArrayBase.from_list(i64, list(range(start, lanes, 2)))
        part = em.emit(vector.ShuffleOp(acc, acc, mask,
                                        result_type=VectorType(IntegerType(bits), [lanes // 2])))
        halves.append(em.emit(arith.ExtUIOp(part, wide)))
    return em.emit(arith.AddiOp(*halves))


class BlockKernel:
    """Emits the blocked interior of the rows of one convolution (module docstring)."""

    def __init__(self, plan: BlockPlan, x: SSAValue, words: int, kernel_h: int, stride_w: int,
                 pad_left: int, dilation_h: int, height: int, out_channels: int, fan_in: int,
                 weights: tuple[str, MemRefType], corrections: tuple[str, MemRefType] | None,
                 kernel_w: int = 1, width: int = 1,
                 column_cases: Sequence[frozenset[int]] = (frozenset(),)):
        self.plan, self.x, self.words, self.kh = plan, x, words, kernel_h
        self.kw, self.w = kernel_w, width
        self.column_cases = list(column_cases)
        self.sw, self.pad_left, self.dh, self.h = stride_w, pad_left, dilation_h, height
        self.o, self.fan_in = out_channels, fan_in
        self.weights, self.corrections = weights, corrections

    # Activations -------------------------------------------------------------------------
    def chunk(self, em: Emitter, chunk: Chunk, n: SSAValue, rows: list[SSAValue],
              oks: list[SSAValue | None], iw0: SSAValue, shift: SSAValue | None,
              missing: frozenset[int] = frozenset()) -> SSAValue:
        """The chunk's bytes of the window at column ``iw0`` (out-of-range rows read as zero
        bytes), repeated ``V`` times. ``shift``: a byte offset added to the run offsets; the
        address ``[n, ih, iw0, offset]`` then runs on past the channel extent into the next taps
        of the same input row (the memref is row-major with the identity layout)."""
        m = self.plan.chunk_bytes
        zero = em.vector_const([0] * m, i8)
        v: SSAValue | None = None
        halves = self.plan.popcount == "neon"  # no masked loads: pieces load alone
        for piece in self.inside_taps(chunk.pieces, missing):
            # A masked load reads the chunk's lanes from the address of lane 0; a half from its own.
            start = piece.offset if halves else piece.offset - piece.first
            if shift is not None:
                at = [n, rows[piece.row], iw0, em.add(shift, em.index(start))]
            else:
                tap, byte = divmod(start, self.words)
                at = [n, rows[piece.row], em.add(iw0, em.index(tap)) if tap else iw0,
                      em.index(byte)]
            ok = oks[piece.row]
            if (piece.first, piece.lanes) == (0, m):
                loaded = em.vload(self.x, at, m)
            elif halves:  # an 8-byte half (bconv_plan.NEON_HALF)
                half = m // 2
                assert piece.lanes == half and piece.first in (0, half), piece
                part = em.vload(self.x, at, half)
                if ok is not None:
                    part = em.select(ok, part, em.vector_const([0] * half, i8))
                ok = None
                base = zero if v is None else v
                wide = em.emit(vector.ShuffleOp(part, part, DenseArrayBase.from_list(
                    i64, list(range(half)) * 2), result_type=VectorType(i8, [m])))
                lanes = [m + i if piece.first <= i < piece.first + half else i for i in range(m)]
                loaded = em.emit(vector.ShuffleOp(base, wide, DenseArrayBase.from_list(
                    i64, lanes), result_type=VectorType(i8, [m])))
            else:
                bits = (0,) * piece.first + (1,) * piece.lanes + \
                    (0,) * (m - piece.first - piece.lanes)
                mask = em.pool.get(("lane mask", bits), lambda bits=bits: arith.ConstantOp(
                    DenseIntOrFPElementsAttr.from_list(VectorType(i1, [m]), bits)))
                loaded = em.emit(vector.MaskedLoadOp(self.x, at, mask, zero if v is None else v))
            if ok is not None:
                loaded = em.select(ok, loaded, zero if v is None else v)
            v = loaded
        if v is None:  # every byte in kernel columns outside the input
            v = zero
        if chunk.keep:
            keep = em.vector_const([0] * chunk.keep + [0xFF] * (m - chunk.keep), i8)
            v = em.emit(arith.AndIOp(v, keep))
        if self.plan.per_vector == 1:
            return v
        mask = DenseArrayBase.from_list(i64, list(range(m)) * self.plan.per_vector)
        return em.emit(vector.ShuffleOp(v, v, mask,
                                        result_type=VectorType(i8, [self.plan.vector_bytes])))

    def inside_taps(self, pieces: Sequence[Piece], missing: frozenset[int]) -> list[Piece]:
        """``pieces`` cut at tap boundaries, without the bytes of the kernel columns in
        ``missing`` (they stay zero: ``+1``, corrected like a missing row)."""
        if not missing:
            return list(pieces)
        kept = []
        for piece in pieces:
            start, end = piece.offset, piece.offset + piece.lanes
            while start < end:
                tap = start // self.words
                until = min(end, (tap + 1) * self.words)
                if tap not in missing:
                    kept.append(Piece(piece.row, start, piece.first + start - piece.offset,
                                      until - start))
                start = until
        return kept

    # One block -----------------------------------------------------------------------------
    def block(self, em: Emitter, n: SSAValue, ih0: SSAValue, ow0: SSAValue, pixels: int,
              first_vector: SSAValue, vectors: int, check_h: bool, epilogue: Epilogue,
              case: int = 0) -> None:
        """``pixels`` x ``vectors`` channel vectors from column ``ow0`` and vector
        ``first_vector``; their outputs go to ``epilogue``. ``case``: the kernel columns outside
        the input (``column_cases``; only for one pixel at a border column)."""
        missing = self.column_cases[case]
        plan = self.plan
        lane_type = IntegerType(plan.lane_bits)
        rows, oks = [], []
        for r in range(self.kh):
            ih = em.add(ih0, em.index(r * self.dh)) if r else ih0
            ok = em.cmpi(ih, em.index(self.h), "ult") if check_h else None
            rows.append(em.select(ok, ih, em.index(0)) if ok is not None else ih)
            oks.append(ok)
        columns = [em.affine(em.add(ow0, em.index(p)) if p else ow0, self.sw, -self.pad_left)
                   for p in range(pixels)]
        ref = em.get_global(*self.weights)
        vs = [em.add(first_vector, em.index(b)) if b else first_vector for b in range(vectors)]
        zero = em.vector_const([0] * plan.lanes, lane_type)
        steps = len(plan.chunks)

        def step(e: Emitter, accs: list[SSAValue], chunk: Chunk, j: SSAValue,
                 rows: list[SSAValue], oks: list[SSAValue | None],
                 shift: SSAValue | None = None) -> list[SSAValue]:
            acts = [self.chunk(e, chunk, n, rows, oks, iw0, shift, missing) for iw0 in columns]
            ws = [e.vload(ref, [v, j, e.index(0)], plan.vector_bytes) for v in vs]
            return [e.emit(NarrowAccOp(accs[p * vectors + b], acts[p], ws[b], steps))
                    for p in range(pixels) for b in range(vectors)]

        flat = [zero] * (pixels * vectors)
        period = plan.row_period
        if period is None or missing:
            skipped = set(skipped_chunks(plan, self.words, missing))
            for j, chunk in enumerate(plan.chunks):
                if j not in skipped:
                    flat = step(em, flat, chunk, em.index(j), rows, oks)
        else:  # a loop over kernel rows, the chunks of a row unrolled

            def kernel_row(e: Emitter, r: SSAValue, accs: Sequence[SSAValue]) -> list[SSAValue]:
                ih = e.add(ih0, e.affine(r, self.dh, 0))
                ok = e.cmpi(ih, e.index(self.h), "ult") if check_h else None
                row = [e.select(ok, ih, e.index(0)) if ok is not None else ih]
                group = plan.row_group
                if group == period:
                    state = list(accs)
                    for i in range(period):
                        state = step(e, state, plan.chunks[i], e.affine(r, period, i), row, [ok])
                    return state

                def chunk_group(e2: Emitter, i0: SSAValue, st: Sequence[SSAValue]) -> list:
                    first = e2.add(e2.affine(r, period, 0), i0)
                    shift = e2.affine(i0, plan.chunk_bytes, 0)
                    st = list(st)
                    for u in range(group):
                        st = step(e2, st, plan.chunks[u], e2.add(first, e2.index(u)), row, [ok],
                                  shift)
                    return st

                return e.loop(0, period, chunk_group, accs, step=group)

            # NEON, a row unrolled whole: the first row peeled, its steps start from the zero
            # accumulators, so they are the popcounts themselves (no zeroing, no adds: P*B fewer
            # adds per chunk of the row); the loop runs over the other rows. (Whole layer,
            # llvm-mca 19: 256@28 93% -> 94% of the bound on cortex-a72, 28x28x128 78% -> 83%.)
            first = 1 if plan.popcount == "neon" and plan.row_group == period else 0
            if first:
                flat = kernel_row(em, em.index(0), flat)
            flat = em.loop(first, self.kh, kernel_row, flat)
        if epilogue.vector is not None and plan.lanes == plan.per_vector > 1:
            self.vector_outputs(em, flat, ow0, pixels, vs, oks if check_h else [], case,
                                epilogue.vector)
            return
        popcounts = self.lane_sums(em, flat)
        if epilogue.vector is not None and plan.per_vector == 1 and vectors > 1:
            self.gathered_outputs(em, popcounts, ow0, pixels, vs, oks if check_h else [], case,
                                  epilogue.vector)
            return
        fan_in = em.int(self.fan_in, i32)
        for p in range(pixels):
            ow = em.add(ow0, em.index(p)) if p else ow0
            for b in range(vectors):
                for c in range(plan.per_vector):
                    k = (p * vectors + b) * plan.per_vector + c
                    o = em.affine(vs[b], plan.per_vector, c)
                    value = em.sub(fan_in, em.emit(arith.ShLIOp(popcounts[k], em.int(1, i32))))
                    if (check_h or missing) and self.corrections is not None:
                        value = self.corrected(em, value, oks if check_h else [], o, case)
                    self.store_if_channel(em, epilogue, value, ow, o, b, c)

    def store_if_channel(self, em: Emitter, epilogue: Epilogue, value: SSAValue, ow: SSAValue,
                         o: SSAValue, b: int, c: int) -> None:
        """The epilogue of channel ``o``; the padding channels past ``O`` (only in the last
        weight vector) are dropped."""
        if self.o % self.plan.per_vector == 0 or c < self.o % self.plan.per_vector:
            epilogue.scalar(em, value, ow, o)
            return
        inside = em.cmpi(o, em.index(self.o), "ult")
        em.if_else(inside, lambda e: epilogue.scalar(e, value, ow, o), lambda e: None)

    def vector_outputs(self, em: Emitter, accs: Sequence[SSAValue], ow0: SSAValue, pixels: int,
                       vs: Sequence[SSAValue], oks: list[SSAValue | None], case: int,
                       store: VectorEpilogue) -> None:
        """One lane per output (the ``ctpop`` targets): accumulator ``(p, b)`` holds the
        popcounts of the ``V`` channels of vector ``b`` at pixel ``p``, so ``K - 2*popcount``
        (+ the border correction, lane-wise from the table) is computed and stored per vector."""
        lanes = self.plan.per_vector
        fan_in = em.vector_const([self.fan_in] * lanes, i32)
        one = em.vector_const([1] * lanes, i32)
        for p in range(pixels):
            ow = em.add(ow0, em.index(p)) if p else ow0
            for b, v in enumerate(vs):
                first = em.affine(v, lanes, 0)
                value = em.emit(arith.SubiOp(fan_in, em.emit(
                    arith.ShLIOp(accs[p * len(vs) + b], one))))
                if (oks or self.column_cases[case]) and self.corrections is not None:
                    value = self.corrected_lanes(em, value, oks, first, case)
                store(em, value, ow, first)

    def gathered_outputs(self, em: Emitter, popcounts: Sequence[SSAValue], ow0: SSAValue,
                         pixels: int, vs: Sequence[SSAValue], oks: list[SSAValue | None],
                         case: int, store: VectorEpilogue) -> None:
        """One channel per weight vector (NEON): the ``B`` channels of a block are consecutive
        (``vs[b] = vs[0] + b``, all ``< O``), so a pixel's results are gathered into one
        ``vector<B x i32>`` for the epilogue."""
        fan_in = em.int(self.fan_in, i32)
        for p in range(pixels):
            ow = em.add(ow0, em.index(p)) if p else ow0
            gathered = em.vector_const([0] * len(vs), i32)
            for b, o in enumerate(vs):
                count = popcounts[p * len(vs) + b]
                value = em.sub(fan_in, em.emit(arith.ShLIOp(count, em.int(1, i32))))
                if (oks or self.column_cases[case]) and self.corrections is not None:
                    value = self.corrected(em, value, oks, o, case)
                gathered = em.emit(vector.InsertOp(value, gathered, [b]))
            store(em, gathered, ow, vs[0])

    def corrected_lanes(self, em: Emitter, value: SSAValue, oks: list[SSAValue | None],
                        first: SSAValue, case: int) -> SSAValue:
        """:meth:`corrected` of the ``V`` channels from ``first`` (the table has a column for
        every channel of every weight vector)."""
        assert self.corrections is not None
        lanes = self.plan.per_vector
        table = em.get_global(*self.corrections)
        if self.column_cases[case]:
            delta = em.vload(table, [em.index(case), em.index(self.kh), first], lanes)
            value = em.emit(arith.AddiOp(value, delta))
        zero = em.vector_const([0] * lanes, i32)
        for r, ok in enumerate(oks):
            assert ok is not None
            delta = em.vload(table, [em.index(case), em.index(r), first], lanes)
            value = em.emit(arith.AddiOp(value, em.select(ok, zero, delta)))
        return value

    def corrected(self, em: Emitter, value: SSAValue, oks: list[SSAValue | None],
                  o: SSAValue, case: int) -> SSAValue:
        """``value`` plus the correction of every kernel row outside the input (``oks``) and of
        the kernel columns of ``case`` (see :func:`correction_table`)."""
        assert self.corrections is not None
        table = em.get_global(*self.corrections)
        if self.column_cases[case]:
            value = em.add(value, em.load(table, [em.index(case), em.index(self.kh), o]))
        for r, ok in enumerate(oks):
            assert ok is not None
            delta = em.load(table, [em.index(case), em.index(r), o])
            value = em.add(value, em.select(ok, em.int(0, i32), delta))
        return value

    def lane_sums(self, em: Emitter, accs: list[SSAValue]) -> list[SSAValue]:
        """The ``i32`` popcount of every output of ``accs`` (see :func:`block_lane_sums`)."""
        plan = self.plan
        neon = plan.popcount == "neon"
        lanes, bits = plan.lanes, plan.lane_bits
        bound = 8 * plan.chunk_bytes * len(plan.chunks)  # one output's popcount
        while bits < 32 and bound > 2**bits - 1 and lanes // plan.per_vector >= 2:
            accs = [widen_pairs(em, a, lanes, bits, neon) for a in accs]
            lanes, bits = lanes // 2, bits * 2
        lane_type = IntegerType(bits)
        if bound > 2**bits - 1:  # a single lane per output: extend and done
            accs = [em.emit(arith.ExtUIOp(a, VectorType(i32, [lanes]))) for a in accs]
            lane_type, bits = i32, 32
        sums = block_lane_sums(em, accs, lanes, lane_type, plan.per_vector,
                               "even_odd" if neon else "halves")
        return sums if bits == 32 else [em.emit(arith.ExtUIOp(s, i32)) for s in sums]

    # Rows ----------------------------------------------------------------------------------
    def interior(self, em: Emitter, n: SSAValue, ih0: SSAValue, lo: int, hi: int, check_h: bool,
                 epilogue: Epilogue, vectors: VectorRange | None = None) -> None:
        """Columns ``[lo, hi)`` of one output row, every output channel (or the channel vectors
        of ``vectors``)."""
        plan = self.plan
        p, b = plan.pixels, plan.vectors
        width = hi - lo
        whole = width // p * p

        def tile(e: Emitter, t0: SSAValue, size: int) -> None:
            def blocks(e2: Emitter, ow0: SSAValue, pixels: int) -> None:
                full = size // b * b
                e2.loop(0, full, lambda e3, v, _: self.block(
                    e3, n, ih0, ow0, pixels, e3.add(t0, v), b, check_h, epilogue) or [], step=b)
                if size > full:
                    self.block(e2, n, ih0, ow0, pixels, e2.add(t0, e2.index(full)), size - full,
                               check_h, epilogue)

            e.loop(lo, lo + whole, lambda e2, ow0, _: blocks(e2, ow0, p) or [], step=p)
            if width > whole:
                blocks(e, e.index(lo + whole), width - whole)

        self.tiles(em, tile, vectors)

    def tiles(self, em: Emitter, tile: Callable[[Emitter, SSAValue, int], None],
              vectors: VectorRange | None = None) -> None:
        """``tile(e, first_vector, size)`` over the channel tiles (the last one partial) of all
        channel vectors, or of the ``count`` vectors from ``first`` of ``vectors = (first,
        count)`` (a parallel unit's part of the row, cut in blocks of ``B`` from ``first``)."""
        plan = self.plan
        first, count = (None, plan.channel_vectors) if vectors is None else vectors

        def at(e: Emitter, t0: SSAValue) -> SSAValue:
            return t0 if first is None else e.add(first, t0)

        tiles = count // plan.tile * plan.tile
        em.loop(0, tiles, lambda e, t0, _: tile(e, at(e, t0), plan.tile) or [], step=plan.tile)
        if count > tiles:
            tile(em, at(em, em.index(tiles)), count - tiles)

    def border_column(self, em: Emitter, n: SSAValue, ih0: SSAValue, ow: int, check_h: bool,
                      epilogue: Epilogue, vectors: VectorRange | None = None) -> None:
        """Output column ``ow`` (a border column, some kernel columns outside the input), every
        output channel (or those of ``vectors``), one pixel per block."""
        iw0 = ow * self.sw - self.pad_left
        missing = frozenset(c for c in range(self.kw) if not 0 <= iw0 + c < self.w)
        case = self.column_cases.index(missing)
        b = self.plan.vectors

        def tile(e: Emitter, t0: SSAValue, size: int) -> None:
            full = size // b * b
            e.loop(0, full, lambda e2, v, _: self.block(
                e2, n, ih0, e2.index(ow), 1, e2.add(t0, v), b, check_h, epilogue, case) or [],
                step=b)
            if size > full:
                self.block(e, n, ih0, e.index(ow), 1, e.add(t0, e.index(full)), size - full,
                           check_h, epilogue, case)

        self.tiles(em, tile, vectors)


def add_block_globals(plan: BlockPlan, w: np.ndarray, run: int, pad: int, bits_per_tap: int,
                      column_cases: Sequence[frozenset[int]], add_global
                      ) -> tuple[tuple[str, MemRefType], tuple[str, MemRefType] | None]:
    """The re-laid weights (and the border corrections, when border rows or columns use the
    kernel) as constant globals: ``add_global(stem, values, type) -> name``."""
    relaid = relaid_weights(plan, w, run)
    wtype = MemRefType(i8, list(relaid.shape))
    weights = (add_global("__bnn_wvectors", relaid, wtype), wtype)
    corrections = None
    if plan.border != "none":
        words = w.shape[-1]
        skipped = [chunk_popcounts(relaid, plan, skipped_chunks(plan, words, missing))
                   for missing in column_cases]
        table = correction_table(pad, w, plan.channel_vectors * plan.per_vector, bits_per_tap,
                                 column_cases, skipped)
        ctype = MemRefType(i32, list(table.shape))
        corrections = (add_global("__bnn_border", table, ctype), ctype)
    return weights, corrections


__all__ = ["BlockKernel", "Epilogue", "VectorRange", "add_block_globals", "block_lane_sums",
           "correction_table", "relaid_weights", "skipped_chunks", "tap_popcounts"]
