"""Direct binary convolution (buffer-form ``bnn.bconv2d``) as a loop nest with ``bnn.narrow_acc``.

Loop nest, for ``x: [N, H, W, Cb]``, ``w: [O, KH, KW, Cb]``, ``out: [N, OH, OW, O]``::

    for r in [0, N*OH)            (scf.parallel when requested; n = r / OH, oh = r % OH)
      for ow in [0, OW)
        for o in [0, O)
          for kh in [0, KH)       ih = oh*sh - pt + kh*dh
            for kw in [0, KW)     iw = ow*sw - pl + kw*dw
              for j in full chunks of M bytes:
                acc = narrow_acc(acc, x[n, ih, iw, j:j+M], w[o, kh, kw, j:j+M])
              tail of Cb % M bytes: scalar loads inserted into zero vectors, one narrow_acc
          out[n, oh, ow, o] = K - 2 * (sum of the lanes of acc, as i32)

``M = min(vector_bytes, largest power of two <= Cb)``, so the scalar tail ``Cb % M`` is shorter
than one vector and as short as a power-of-two vector allows. Zero-filling the tail chunk beyond
its ``Cb % M`` bytes in both operands makes those bytes XOR to 0. The accumulator layout and where the chain is flushed
come from :func:`bnnmlir.passes.accumulator_width.plan_accumulator` (proof there).

Summing the lanes: xDSL's ``arith.extui`` takes no vectors, so the lanes are summed either in the
lane type by ``vector.reduction <add>`` when the sum provably fits it (by the bit convention only
the ``C`` valid bits of a tap can differ, so a whole output's popcount is at most ``K = KH*KW*C``),
or lane by lane: ``vector.extract`` + scalar ``extui`` to ``i32`` + a balanced tree of ``addi``,
which LLVM folds back into one widening vector reduction.

Padding, without out-of-bounds loads: a tap's row is in range iff ``ih`` is in ``[0, H)`` (one
unsigned compare ``ih <u H``, negative ``ih`` being huge), same for columns; out-of-range taps load
from the clamped position ``(ok ? ih : 0, ok ? iw : 0)`` and the loaded activation vector is
replaced with ``arith.select ok, loaded, padding``, where ``padding`` is

* ``pad_value = +1``: all bits 0 (+1);
* ``pad_value = -1``: 0xFF on full bytes and ``last_word_mask(C)`` on the last byte (only the ``C``
  valid channels are -1; the unused bits must stay 0 like the weight's);
* ``pad_value = 0``: the weight vector itself, so ``a XOR w = 0`` and the tap adds no popcount;
  the tap is not counted in ``K`` either: ``K = C * (number of in-range taps)``, counted in ``i32``.

With ``pad_value = -1`` and ``C % 8 != 0`` the last byte lies in the last full chunk when there is
no tail; that chunk is peeled off the chunk loop to use its own padding vector. Taps that the
shapes prove in range (no padding reaches them) get no compare and no select at all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from xdsl.dialects import arith, vector
from xdsl.dialects.builtin import IntegerType, MemRefType, i8, i32
from xdsl.ir import SSAValue

from bnnmlir.bits import CLIP8_MAX, CLIP8_MIN, WORD_BITS, PadValue, last_word_mask
from bnnmlir.dialects.bnn import BConv2dOp, NarrowAccOp
from bnnmlir.passes.accumulator_width import AccumulatorPlan, plan_accumulator
from bnnmlir.passes.loops.elementwise import threshold_minus
from bnnmlir.passes.loops.emitter import Emitter


def chunk_bytes(words: int, vector_bytes: int) -> int:
    """``M``: the vector width in bytes for ``words`` packed bytes per tap (a power of two)."""
    m = 1
    while m * 2 <= min(words, vector_bytes):
        m *= 2
    return m


def needs_bounds_check(
    size: int, out_size: int, kernel: int, stride: int, dilation: int, pad_lo: int
) -> bool:
    """Whether some tap along one axis falls outside ``[0, size)``."""
    last = (out_size - 1) * stride - pad_lo + (kernel - 1) * dilation
    return pad_lo > 0 or last >= size


def reduce_add(em: Emitter, lanes: SSAValue, lane_type: IntegerType) -> SSAValue:
    """``vector.reduction <add>`` of an integer vector into a scalar of its element type."""
    return em.emit(
        vector.ReductionOp.create(
            operands=[lanes],
            result_types=[lane_type],
            properties={"kind": vector.CombiningKindAttr(vector.CombiningKindFlag.ADD)},
        )
    )


class ConvLowering:
    """Emits the loop nest of one ``bnn.bconv2d`` (see the module docstring)."""

    def __init__(self, op: BConv2dOp, vector_bytes: int, thresholds: ThresholdTables | None = None):
        self.op = op
        self.kind = op.output_kind
        if (self.kind == "threshold") != (thresholds is not None):
            raise ValueError("a threshold output needs its threshold tables, and only it")
        self.thresholds = thresholds
        x_type, out_type = op.input.type, op.out.type  # type: ignore[union-attr]
        assert isinstance(x_type, MemRefType) and isinstance(out_type, MemRefType)
        self.n, self.h, self.w, self.words = x_type.get_shape()
        _, self.oh, self.ow, _ = out_type.get_shape()
        self.o = op.weight.type.get_shape()[0]  # type: ignore[union-attr]
        self.kh, self.kw = op.kernel_hw
        self.sh, self.sw = op.stride_hw
        self.dh, self.dw = op.dilation_hw
        self.pt, _, self.pl, _ = op.pads
        self.pad = op.pad
        self.channels = op.channels
        self.m = chunk_bytes(self.words, vector_bytes)
        self.full, self.tail = divmod(self.words, self.m)
        self.plan: AccumulatorPlan = plan_accumulator(
            self.kh, self.kw, self.full + (self.tail > 0), self.m
        )
        self.check_h = needs_bounds_check(self.h, self.oh, self.kh, self.sh, self.dh, self.pt)
        self.check_w = needs_bounds_check(self.w, self.ow, self.kw, self.sw, self.dw, self.pl)
        self.count_taps = self.pad == PadValue.ZERO and (self.check_h or self.check_w)
        last_mask = last_word_mask(self.channels)
        self.peel_last = self.pad == PadValue.MINUS_ONE and self.tail == 0 and last_mask != 0xFF
        self.last_mask = last_mask

    # Accumulator -----------------------------------------------------------------------------
    def zero_acc(self, em: Emitter) -> SSAValue:
        return em.vector_const([0] * self.plan.lanes, IntegerType(self.plan.lane_bits))

    def lane_sum(self, em: Emitter, acc: SSAValue, bound: int) -> SSAValue:
        """The sum of the accumulator lanes as ``i32``, given that it is at most ``bound``.

        In the lane type when ``bound`` fits it (one ``vector.reduction``, then ``extui``); else
        each lane is extracted, extended to ``i32`` and summed by a balanced tree of ``addi``
        (LLVM turns that into a widening vector reduction).
        """
        lane_type = IntegerType(self.plan.lane_bits)
        if self.plan.lane_bits == 32 or bound <= 2**self.plan.lane_bits - 1:
            total = reduce_add(em, acc, lane_type)
            return total if self.plan.lane_bits == 32 else em.emit(arith.ExtUIOp(total, i32))
        terms = [
            em.emit(arith.ExtUIOp(em.emit(vector.ExtractOp(acc, [j], lane_type)), i32))
            for j in range(self.plan.lanes)
        ]
        while len(terms) > 1:
            pairs = [em.add(a, b) for a, b in zip(terms[::2], terms[1::2])]
            terms = pairs + terms[len(pairs) * 2 :]
        return terms[0]

    # Emission --------------------------------------------------------------------------------
    def emit(self, em: Emitter, parallel: bool) -> None:
        rows = self.n * self.oh
        if parallel:
            em.parallel(rows, self.row)
        else:
            em.loop(0, rows, lambda e, r, _: self.row(e, r) or [])

    def row(self, em: Emitter, r: SSAValue) -> None:
        if self.n == 1:
            n, oh = em.index(0), r
        elif self.oh == 1:
            n, oh = r, em.index(0)
        else:
            n = em.emit(arith.DivUIOp(r, em.index(self.oh)))
            oh = em.emit(arith.RemUIOp(r, em.index(self.oh)))
        ih0 = em.affine(oh, self.sh, -self.pt)

        def column(e: Emitter, ow: SSAValue, _: Sequence[SSAValue]) -> list[SSAValue]:
            iw0 = e.affine(ow, self.sw, -self.pl)

            def value(e2: Emitter, o: SSAValue) -> SSAValue:
                return self.accumulate(e2, n, oh, ow, o, ih0, iw0)

            if self.kind == "threshold":
                self.store_bits(e, value, [n, oh, ow])
            else:
                e.loop(0, self.o, lambda e2, o, _: self.store(e2, value(e2, o), [n, oh, ow, o]) or [])
            return []

        em.loop(0, self.ow, column)

    def store(self, em: Emitter, acc: SSAValue, at: list[SSAValue]) -> None:
        """Store one ``i32`` result, through the fused ``clip8`` when there is one."""
        if self.kind == "clip8":
            acc = em.emit(arith.MaxSIOp(acc, em.int(CLIP8_MIN, i32)))
            acc = em.emit(arith.MinSIOp(acc, em.int(CLIP8_MAX, i32)))
            acc = em.emit(arith.TruncIOp(acc, i8))
        em.store(acc, self.op.out, at)  # type: ignore[arg-type]

    def store_bits(self, em: Emitter, value: Callable[[Emitter, SSAValue], SSAValue],
                   lead: list[SSAValue]) -> None:
        """Fused threshold: the ``O`` results of one position, thresholded and packed 8 per byte
        (bit ``o % 8`` of word ``o // 8``; the unused high bits of the last word stay 0)."""
        tables = self.thresholds
        assert tables is not None
        full_words, rest = divmod(self.o, WORD_BITS)

        def word(e: Emitter, wo: SSAValue, bits: int) -> None:
            def bit(e2: Emitter, b: SSAValue, state: Sequence[SSAValue]) -> list[SSAValue]:
                o = e2.add(e2.affine(wo, WORD_BITS, 0), b)
                minus = threshold_minus(e2, value(e2, o), o, tables.uniform, tables.thresholds,
                                        tables.directions)
                shift = e2.emit(arith.IndexCastOp(b, i32))
                one = e2.emit(arith.ShLIOp(e2.emit(arith.ExtUIOp(minus, i32)), shift))
                return [e2.emit(arith.OrIOp(state[0], one))]

            (byte,) = e.loop(0, bits, bit, [e.int(0, i32)])
            e.store(e.emit(arith.TruncIOp(byte, i8)), self.op.out, [*lead, wo])  # type: ignore[arg-type]

        if full_words:
            em.loop(0, full_words, lambda e, wo, _: word(e, wo, WORD_BITS) or [])
        if rest:
            word(em, em.index(full_words), rest)

    def accumulate(
        self,
        em: Emitter,
        n: SSAValue,
        oh: SSAValue,
        ow: SSAValue,
        o: SSAValue,
        ih0: SSAValue,
        iw0: SSAValue,
    ) -> SSAValue:
        """All taps of one output ``out[n, oh, ow, o]``: ``K - 2*popcount`` as ``i32``."""
        plan = self.plan
        # Carried through the tap loops: the accumulator, or the i32 total when the chain is
        # flushed inside them; plus the number of in-range taps when it varies.
        carried = self.zero_acc(em) if plan.flush == "none" else em.int(0, i32)
        zero_count = [em.int(0, i32)] if self.count_taps else []
        # A flushed block sums at most 8 bits per byte of its steps.
        block_bound = plan.chain_steps * self.m * 8

        def tap_row(e: Emitter, kh: SSAValue, state: Sequence[SSAValue]) -> list[SSAValue]:
            ih = e.add(ih0, e.affine(kh, self.dh, 0))
            ok_h = e.cmpi(ih, e.index(self.h), "ult") if self.check_h else None
            ih_safe = e.select(ok_h, ih, e.index(0)) if ok_h is not None else ih

            def tap(e2: Emitter, kw: SSAValue, inner: Sequence[SSAValue]) -> list[SSAValue]:
                iw = e2.add(iw0, e2.affine(kw, self.dw, 0))
                ok_w = e2.cmpi(iw, e2.index(self.w), "ult") if self.check_w else None
                iw_safe = e2.select(ok_w, iw, e2.index(0)) if ok_w is not None else iw
                if ok_h is None or ok_w is None:
                    ok = ok_h if ok_w is None else ok_w
                else:
                    ok = e2.emit(arith.AndIOp(ok_h, ok_w))
                acc = self.zero_acc(e2) if plan.flush == "tap" else inner[0]
                acc = self.tap_chain(e2, acc, [n, ih_safe, iw_safe], [o, kh, kw], ok)
                if plan.flush == "tap":
                    acc = e2.add(inner[0], self.lane_sum(e2, acc, block_bound))
                result = [acc]
                if self.count_taps:
                    assert ok is not None
                    result.append(e2.add(inner[1], e2.emit(arith.ExtUIOp(ok, i32))))
                return result

            if plan.flush == "row":
                acc, *count = e.loop(0, self.kw, tap, [self.zero_acc(e), *state[1:]])
                return [e.add(state[0], self.lane_sum(e, acc, block_bound)), *count]
            return e.loop(0, self.kw, tap, state)

        final, *count = em.loop(0, self.kh, tap_row, [carried, *zero_count])
        fan_in = self.channels * self.kh * self.kw
        # By the bit convention only the C valid bits of a tap can differ: popcount <= K.
        popcount = self.lane_sum(em, final, fan_in) if plan.flush == "none" else final
        if self.count_taps:
            k = em.mul(count[0], em.int(self.channels, i32))
        else:
            k = em.int(fan_in, i32)
        twice = em.emit(arith.ShLIOp(popcount, em.int(1, i32)))
        return em.sub(k, twice)

    def tap_chain(
        self,
        em: Emitter,
        acc: SSAValue,
        x_at: list[SSAValue],
        w_at: list[SSAValue],
        ok: SSAValue | None,
    ) -> SSAValue:
        """``narrow_acc`` over the ``Cb`` bytes of one tap: full chunks, then the tail."""
        m = self.m
        x, w = self.op.input, self.op.weight
        steps = self.plan.chain_steps

        def chunk(
            e: Emitter, offset: SSAValue, state: Sequence[SSAValue], last: bool = False
        ) -> list[SSAValue]:
            a = e.vload(x, [*x_at, offset], m)
            b = e.vload(w, [*w_at, offset], m)
            if ok is not None:
                a = e.select(ok, a, self.padding(e, b, m, m if last else None))
            return [e.emit(NarrowAccOp(state[0], a, b, steps))]

        looped = self.full - 1 if self.peel_last else self.full
        (acc,) = em.loop(0, looped * m, chunk, [acc], step=m)
        if self.peel_last:
            (acc,) = chunk(em, em.index(looped * m), [acc], last=True)
        if self.tail:
            a, b = self.zero_bytes(em), self.zero_bytes(em)
            for i in range(self.tail):
                at = em.index(self.full * m + i)
                a = em.emit(vector.InsertOp(em.load(x, [*x_at, at]), a, [i]))
                b = em.emit(vector.InsertOp(em.load(w, [*w_at, at]), b, [i]))
            if ok is not None:
                a = em.select(ok, a, self.padding(em, b, m, self.tail))
            acc = em.emit(NarrowAccOp(acc, a, b, steps))
        return acc

    def zero_bytes(self, em: Emitter) -> SSAValue:
        return em.vector_const([0] * self.m, i8)

    def padding(self, em: Emitter, weight: SSAValue, m: int, last_byte_at: int | None) -> SSAValue:
        """The activation bytes of an out-of-range tap (``last_byte_at``: bytes up to and including
        the tap's last byte, when this chunk holds it)."""
        if self.pad == PadValue.ZERO:
            return weight
        if self.pad == PadValue.PLUS_ONE:
            return self.zero_bytes(em)
        if last_byte_at is None:
            return em.vector_const([0xFF] * m, i8)
        values = [0xFF] * (last_byte_at - 1) + [self.last_mask] + [0] * (m - last_byte_at)
        return em.vector_const(values, i8)


@dataclass(frozen=True)
class ThresholdTables:
    """Where a fused threshold output reads its per-channel thresholds and directions."""

    thresholds: SSAValue
    directions: SSAValue | None
    uniform: int | None
    """The common direction of every channel, if any (then ``directions`` is not read)."""


def lower_bconv2d(em: Emitter, op: BConv2dOp, vector_bytes: int, parallel: bool,
                  thresholds: ThresholdTables | None = None) -> None:
    ConvLowering(op, vector_bytes, thresholds).emit(em, parallel)


__all__ = ["ConvLowering", "ThresholdTables", "chunk_bytes", "lower_bconv2d", "needs_bounds_check"]
