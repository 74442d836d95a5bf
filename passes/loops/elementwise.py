"""Loop nests of the element-wise bnn ops: ``bnn.binarize``, ``bnn.threshold``, ``bnn.clip8``.

All three loop over the leading dimensions of their static input; the two packing ops then loop
over the output words and build each byte from its (up to) 8 channels, unrolled: bit ``b`` of
word ``w`` is channel ``c = 8*w + b`` and is 1 iff that channel is -1. The last word, when
``C % 8 != 0``, is emitted separately with only its ``C % 8`` channels: its unused bits stay 0.

Threads (the ``parallel`` option): :func:`loop_nest` of a tensor of at least
:data:`MIN_PARALLEL_ELEMENTS` elements runs its first two dimensions as one ``scf.parallel`` over
the ``D0*D1`` rows (``i0 = r / D1``, ``i1 = r % D1``); every row writes only its own elements, so
any split of the rows computes the same result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from math import prod

from xdsl.dialects import arith, llvm, math, vector
from xdsl.dialects.builtin import (Float32Type, IntegerAttr, IntegerType, MemRefType, VectorType,
                                   f32, i8, i32, i64)
from xdsl.ir import SSAValue

from bnnmlir.bits import CLIP8_MAX, CLIP8_MIN, WORD_BITS
from bnnmlir.dialects.bnn import BinarizeOp, Clip8Op, ThresholdOp
from bnnmlir.passes.loops.emitter import Emitter
from bnnmlir.passes.loops.lowering import LoweringContext

BitOf = Callable[[Emitter, Sequence[SSAValue], SSAValue], SSAValue]
"""``bit_of(emitter, leading_indices, channel) -> i1``: 1 iff the channel binarizes to -1."""


MIN_PARALLEL_ELEMENTS = 1 << 16
"""Elements below which a support op is not split over threads: one parallel-for (waking the
pool and joining it) costs about as much as this many simple element operations."""


def worth_splitting(parallel: bool, elements: int) -> bool:
    """Split a support op of ``elements`` elements over threads (see :data:`MIN_PARALLEL_ELEMENTS`)."""
    return parallel and elements >= MIN_PARALLEL_ELEMENTS


def loop_nest(
    em: Emitter, extents: Sequence[int], body: Callable[[Emitter, list[SSAValue]], None],
    parallel: bool = False,
) -> None:
    """Nested ``scf.for`` loops over ``extents`` (outermost first) around ``body``; with
    ``parallel``, the first two dimensions are one ``scf.parallel`` over rows (module docstring)."""
    if parallel and len(extents) >= 2 and extents[0] * extents[1] > 1:
        d0, d1 = extents[0], extents[1]

        def row(e: Emitter, r: SSAValue) -> None:
            if d0 == 1:
                lead = [e.index(0), r]
            elif d1 == 1:
                lead = [r, e.index(0)]
            else:
                lead = [e.emit(arith.DivUIOp(r, e.index(d1))), e.emit(arith.RemUIOp(r, e.index(d1)))]
            loop_nest(e, extents[2:], lambda inner, idx: body(inner, [*lead, *idx]))

        em.parallel(d0 * d1, row)
        return

    def level(e: Emitter, depth: int, indices: list[SSAValue]) -> None:
        if depth == len(extents):
            body(e, indices)
            return

        def step(inner: Emitter, iv: SSAValue, _: Sequence[SSAValue]) -> list[SSAValue]:
            level(inner, depth + 1, [*indices, iv])
            return []

        e.loop(0, extents[depth], step)

    level(em, 0, [])


def pack_words(em: Emitter, shape: Sequence[int], out: SSAValue, bit_of: BitOf,
               parallel: bool = False) -> None:
    """``out[..., w] = sum_b bit_of(..., 8*w + b) << b`` over the ``C = shape[-1]`` channels."""
    channels = shape[-1]
    full, rest = divmod(channels, WORD_BITS)

    def row(e: Emitter, lead: list[SSAValue]) -> None:
        if full:
            e.loop(0, full, lambda inner, w, _: pack_word(inner, out, lead, w, WORD_BITS, bit_of)
                   or [])
        if rest:
            pack_word(e, out, lead, e.index(full), rest, bit_of)

    loop_nest(em, shape[:-1], row, worth_splitting(parallel, prod(shape)))


def pack_word(em: Emitter, out: SSAValue, lead: Sequence[SSAValue], w: SSAValue, bits: int,
              bit_of: BitOf) -> None:
    """``out[..., w] = sum_{b < bits} bit_of(..., 8*w + b) << b``."""
    first = em.affine(w, WORD_BITS, 0)
    byte = None
    for b in range(bits):
        channel = first if b == 0 else em.add(first, em.index(b))
        bit = em.emit(arith.ExtUIOp(bit_of(em, lead, channel), i8))
        if b:
            bit = em.emit(arith.ShLIOp(bit, em.int(b, i8)))
        byte = bit if byte is None else em.emit(arith.OrIOp(byte, bit))
    em.store(byte, out, [*lead, w])


def lower_binarize(em: Emitter, op: BinarizeOp, ctx: LoweringContext) -> None:
    """``bnn.binarize``: bit 1 iff not ``x >= 0`` (``cmpf ult x, 0.0`` on f32, so NaN gives 1;
    ``cmpi slt`` on ints).

    An ``f32`` input on a vector target packs ``L`` channels at a time (``L = max(8,
    vector_bytes / 4)``, a multiple of 8): ``ult 0.0`` of the vector ``x[..., c0 : c0 + L]``,
    decided on its bits with two integer compares (see the code), gives ``L`` bits, lane ``i``
    the bit of channel ``c0 + i``; reinterpreted as
    ``L / 8`` bytes (lane ``8k + b`` is bit ``b`` of byte ``k``, LLVM's little-endian order of
    a ``vector<L x i1>``) they are exactly the packed words ``c0 / 8 ..``: one compare and one
    store, where the scalar loop tests each channel. The channels past the last whole vector
    take the scalar path."""
    inp, out = op.input, op.out
    assert out is not None
    in_type = inp.type
    assert isinstance(in_type, MemRefType)
    elem = in_type.get_element_type()
    lanes = max(WORD_BITS, ctx.target.vector_bytes // 4)
    shape = in_type.get_shape()
    if isinstance(elem, Float32Type) and ctx.target.vector_bytes > 4 and shape[-1] >= lanes:
        _binarize_f32_vectors(em, inp, out, shape, lanes, ctx.parallel)
        return

    def bit_of(e: Emitter, lead: Sequence[SSAValue], c: SSAValue) -> SSAValue:
        x = e.load(inp, [*lead, c])
        if isinstance(elem, Float32Type):
            return e.emit(arith.CmpfOp(x, e.f32_zero(), "ult"))
        assert isinstance(elem, IntegerType)
        return e.cmpi(x, e.int(0, elem), "slt")

    pack_words(em, in_type.get_shape(), out, bit_of, ctx.parallel)


def _binarize_f32_vectors(em: Emitter, inp: SSAValue, out: SSAValue, shape: Sequence[int],
                          lanes: int, parallel: bool) -> None:
    """The vector path of :func:`lower_binarize` (its docstring)."""
    channels = shape[-1]
    full = channels // lanes * lanes
    ugt, ne = (IntegerAttr(llvm.ICmpPredicateFlag(p).to_int(), i64) for p in ("ugt", "ne"))

    def bit_of(e: Emitter, lead: Sequence[SSAValue], c: SSAValue) -> SSAValue:
        return e.emit(arith.CmpfOp(e.load(inp, [*lead, c]), e.f32_zero(), "ult"))

    def row(e: Emitter, lead: list[SSAValue]) -> None:
        def chunk(e1: Emitter, c0: SSAValue, _s) -> list:
            # On the f32 bits u: x >= 0 iff u <= 0x7F800000 (+0.0 .. +inf) or u = 0x80000000
            # (-0.0); so "not x >= 0" (NaN included) is u > 0x7F800000 and u != 0x80000000.
            # (xDSL's arith.cmpf and llvm.fcmp are scalar-only; llvm.icmp compares lane-wise.)
            u = e1.emit(llvm.BitcastOp(e1.vload(inp, [*lead, c0], lanes), VectorType(i32, [lanes])))
            above = e1.emit(llvm.ICmpOp(u, e1.vector_const([0x7F800000] * lanes, i32), ugt))
            minus_zero = e1.vector_const([-(1 << 31)] * lanes, i32)
            bits = e1.emit(arith.AndIOp(above, e1.emit(llvm.ICmpOp(u, minus_zero, ne))))
            packed = e1.emit(llvm.BitcastOp(bits, VectorType(i8, [lanes // WORD_BITS])))
            known = e1.known(c0)
            word = (e1.index(known // WORD_BITS) if known is not None
                    else e1.emit(arith.DivUIOp(c0, e1.index(WORD_BITS))))
            e1.emit(vector.StoreOp(packed, out, [*lead, word]))
            return []

        e.loop(0, full, chunk, step=lanes)
        for c in range(full, channels, WORD_BITS):
            pack_word(e, out, lead, e.index(c // WORD_BITS), min(WORD_BITS, channels - c), bit_of)

    loop_nest(em, shape[:-1], row, worth_splitting(parallel, prod(shape)))


@dataclass(frozen=True)
class ThresholdTables:
    """Where a threshold (``bnn.threshold``, or a fused threshold output) reads its per-channel
    thresholds and directions."""

    thresholds: SSAValue
    directions: SSAValue | None
    uniform: int | None
    """The common direction of every channel, if any (then ``directions`` is not read)."""


def threshold_tables(em: Emitter, ctx: LoweringContext, thresholds: Sequence[int],
                     directions: Sequence[int]) -> ThresholdTables:
    """The thresholds (and the directions, unless all equal) as constant globals."""
    t_type = MemRefType(i32, [len(thresholds)])
    t_name = ctx.add_global("__bnn_thresholds", list(thresholds), t_type)
    d_ref = None
    uniform = directions[0] if len(set(directions)) == 1 else None
    if uniform is None:
        d_type = MemRefType(i8, [len(directions)])
        d_ref = em.get_global(ctx.add_global("__bnn_directions", list(directions), d_type), d_type)
    return ThresholdTables(em.get_global(t_name, t_type), d_ref, uniform)


def threshold_minus(em: Emitter, x: SSAValue, c: SSAValue, tables: ThresholdTables) -> SSAValue:
    """``i1``: the threshold gives -1 (bit 1) for the ``i32`` value ``x`` of channel ``c``.

    That is ``x < t[c]`` when ``d[c] = +1`` and ``x > t[c]`` when ``d[c] = -1``: the negation of
    "``x >= t`` (d = +1) or ``x <= t`` (d = -1) gives +1".
    """
    t = em.load(tables.thresholds, [c])
    if tables.uniform == 1:
        return em.cmpi(x, t, "slt")
    if tables.uniform == -1:
        return em.cmpi(x, t, "sgt")
    assert tables.directions is not None
    downward = em.cmpi(em.load(tables.directions, [c]), em.int(0, i8), "slt")
    return em.select(downward, em.cmpi(x, t, "sgt"), em.cmpi(x, t, "slt"))


def lower_threshold(em: Emitter, op: ThresholdOp, ctx: LoweringContext) -> None:
    """``bnn.threshold``: the bits of :func:`threshold_minus`, packed like ``bnn.binarize``.

    The input is sign-extended to ``i32``, the type of the thresholds. ``t`` and ``d`` are
    constant globals (:func:`threshold_tables`); ``d`` is folded in when all directions agree.
    """
    inp, out = op.input, op.out
    assert out is not None
    in_type = inp.type
    assert isinstance(in_type, MemRefType)
    elem = in_type.get_element_type()
    assert isinstance(elem, IntegerType)
    tables = threshold_tables(em, ctx, list(op.thresholds.get_values()),
                              list(op.directions.get_values()))

    def bit_of(e: Emitter, lead: Sequence[SSAValue], c: SSAValue) -> SSAValue:
        x = e.load(inp, [*lead, c])
        if elem.width.data < 32:
            x = e.emit(arith.ExtSIOp(x, i32))
        return threshold_minus(e, x, c, tables)

    pack_words(em, in_type.get_shape(), out, bit_of, ctx.parallel)


def lower_clip8(em: Emitter, op: Clip8Op, ctx: LoweringContext) -> None:
    """``bnn.clip8``: ``trunci(minsi(maxsi(x, -127), 127))`` element by element; ``f32`` input is
    first rounded half to even and clamped in float (``math.roundeven``, then ``x < -127 ? -127 :
    x`` and ``x > 127 ? 127 : x``, compare + select, which vectorize; NaN passes both and, as
    with ``maximumf``/``minimumf``, has no defined ``fptosi``), then converted (``fptosi``,
    exact on [-127, 127])."""
    inp, out = op.input, op.out
    assert out is not None
    in_type = inp.type
    assert isinstance(in_type, MemRefType)
    elem = in_type.get_element_type()

    def body(e: Emitter, idx: list[SSAValue]) -> None:
        x = e.load(inp, idx)
        if isinstance(elem, Float32Type):
            x = e.emit(math.RoundEvenOp(x))
            lo, hi = e.f32(float(CLIP8_MIN)), e.f32(float(CLIP8_MAX))
            x = e.select(e.emit(arith.CmpfOp(x, lo, "olt")), lo, x)
            x = e.select(e.emit(arith.CmpfOp(x, hi, "ogt")), hi, x)
            e.store(e.emit(arith.TruncIOp(e.emit(arith.FPToSIOp(x, i32)), i8)), out, idx)
            return
        assert isinstance(elem, IntegerType)
        x = e.emit(arith.MaxSIOp(x, e.int(CLIP8_MIN, elem)))
        x = e.emit(arith.MinSIOp(x, e.int(CLIP8_MAX, elem)))
        e.store(e.emit(arith.TruncIOp(x, i8)), out, idx)

    shape = in_type.get_shape()
    loop_nest(em, shape, body, worth_splitting(ctx.parallel, prod(shape)))
