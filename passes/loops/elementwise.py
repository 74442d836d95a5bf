"""Loop nests of the element-wise bnn ops: ``bnn.binarize``, ``bnn.threshold``, ``bnn.clip8``.

All three loop over the leading dimensions of their static input; the two packing ops then loop
over the output words and build each byte from its (up to) 8 channels, unrolled: bit ``b`` of
word ``w`` is channel ``c = 8*w + b`` and is 1 iff that channel is -1. The last word, when
``C % 8 != 0``, is emitted separately with only its ``C % 8`` channels: its unused bits stay 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from xdsl.dialects import arith, math
from xdsl.dialects.builtin import Float32Type, IntegerType, MemRefType, i8, i32
from xdsl.ir import SSAValue

from bnnmlir.bits import CLIP8_MAX, CLIP8_MIN, WORD_BITS
from bnnmlir.passes.loops.emitter import Emitter

BitOf = Callable[[Emitter, Sequence[SSAValue], SSAValue], SSAValue]
"""``bit_of(emitter, leading_indices, channel) -> i1``: 1 iff the channel binarizes to -1."""


def loop_nest(
    em: Emitter, extents: Sequence[int], body: Callable[[Emitter, list[SSAValue]], None]
) -> None:
    """Nested ``scf.for`` loops over ``extents`` (outermost first) around ``body``."""

    def level(e: Emitter, depth: int, indices: list[SSAValue]) -> None:
        if depth == len(extents):
            body(e, indices)
            return

        def step(inner: Emitter, iv: SSAValue, _: Sequence[SSAValue]) -> list[SSAValue]:
            level(inner, depth + 1, [*indices, iv])
            return []

        e.loop(0, extents[depth], step)

    level(em, 0, [])


def pack_words(em: Emitter, shape: Sequence[int], out: SSAValue, bit_of: BitOf) -> None:
    """``out[..., w] = sum_b bit_of(..., 8*w + b) << b`` over the ``C = shape[-1]`` channels."""
    channels = shape[-1]
    full, rest = divmod(channels, WORD_BITS)

    def word(e: Emitter, lead: Sequence[SSAValue], w: SSAValue, bits: int) -> None:
        first = e.affine(w, WORD_BITS, 0)
        byte = None
        for b in range(bits):
            channel = first if b == 0 else e.add(first, e.index(b))
            bit = e.emit(arith.ExtUIOp(bit_of(e, lead, channel), i8))
            if b:
                bit = e.emit(arith.ShLIOp(bit, e.int(b, i8)))
            byte = bit if byte is None else e.emit(arith.OrIOp(byte, bit))
        e.store(byte, out, [*lead, w])

    def row(e: Emitter, lead: list[SSAValue]) -> None:
        if full:
            e.loop(0, full, lambda inner, w, _: word(inner, lead, w, WORD_BITS) or [])
        if rest:
            word(e, lead, e.index(full), rest)

    loop_nest(em, shape[:-1], row)


def lower_binarize(em: Emitter, inp: SSAValue, out: SSAValue) -> None:
    """``bnn.binarize``: bit 1 iff not ``x >= 0`` (``cmpf ult x, 0.0`` on f32, so NaN gives 1;
    ``cmpi slt`` on ints)."""
    in_type = inp.type
    assert isinstance(in_type, MemRefType)
    elem = in_type.get_element_type()

    def bit_of(e: Emitter, lead: Sequence[SSAValue], c: SSAValue) -> SSAValue:
        x = e.load(inp, [*lead, c])
        if isinstance(elem, Float32Type):
            return e.emit(arith.CmpfOp(x, e.f32_zero(), "ult"))
        assert isinstance(elem, IntegerType)
        return e.cmpi(x, e.int(0, elem), "slt")

    pack_words(em, in_type.get_shape(), out, bit_of)


def threshold_minus(
    em: Emitter,
    x: SSAValue,
    c: SSAValue,
    uniform: int | None,
    thresholds_ref: SSAValue,
    directions_ref: SSAValue | None,
) -> SSAValue:
    """``i1``: the threshold gives -1 (bit 1) for the ``i32`` value ``x`` of channel ``c``.

    That is ``x < t[c]`` when ``d[c] = +1`` and ``x > t[c]`` when ``d[c] = -1``: the negation of
    "``x >= t`` (d = +1) or ``x <= t`` (d = -1) gives +1". ``uniform`` is the common direction of
    all channels, if there is one (then ``directions_ref`` is not read).
    """
    t = em.load(thresholds_ref, [c])
    if uniform == 1:
        return em.cmpi(x, t, "slt")
    if uniform == -1:
        return em.cmpi(x, t, "sgt")
    assert directions_ref is not None
    downward = em.cmpi(em.load(directions_ref, [c]), em.int(0, i8), "slt")
    return em.select(downward, em.cmpi(x, t, "sgt"), em.cmpi(x, t, "slt"))


def lower_threshold(
    em: Emitter,
    inp: SSAValue,
    out: SSAValue,
    directions: Sequence[int],
    thresholds_ref: SSAValue,
    directions_ref: SSAValue | None,
) -> None:
    """``bnn.threshold``: the bits of :func:`threshold_minus`, packed like ``bnn.binarize``.

    The input is sign-extended to ``i32``, the type of the thresholds. ``t`` is read from
    ``thresholds_ref``; ``d`` from ``directions_ref``, unless all directions are equal (then it
    is folded in).
    """
    in_type = inp.type
    assert isinstance(in_type, MemRefType)
    elem = in_type.get_element_type()
    assert isinstance(elem, IntegerType)
    uniform = directions[0] if len(set(directions)) == 1 else None

    def bit_of(e: Emitter, lead: Sequence[SSAValue], c: SSAValue) -> SSAValue:
        x = e.load(inp, [*lead, c])
        if elem.width.data < 32:
            x = e.emit(arith.ExtSIOp(x, i32))
        return threshold_minus(e, x, c, uniform, thresholds_ref, directions_ref)

    pack_words(em, in_type.get_shape(), out, bit_of)


def lower_clip8(em: Emitter, inp: SSAValue, out: SSAValue) -> None:
    """``bnn.clip8``: ``trunci(minsi(maxsi(x, -127), 127))`` element by element; ``f32`` input is
    first rounded half to even and clamped in float (``math.roundeven``, ``maximumf``,
    ``minimumf``), then converted (``fptosi``, exact on [-127, 127])."""
    in_type = inp.type
    assert isinstance(in_type, MemRefType)
    elem = in_type.get_element_type()

    def body(e: Emitter, idx: list[SSAValue]) -> None:
        x = e.load(inp, idx)
        if isinstance(elem, Float32Type):
            x = e.emit(math.RoundEvenOp(x))
            x = e.emit(arith.MaximumfOp(x, e.f32(float(CLIP8_MIN))))
            x = e.emit(arith.MinimumfOp(x, e.f32(float(CLIP8_MAX))))
            e.store(e.emit(arith.TruncIOp(e.emit(arith.FPToSIOp(x, i32)), i8)), out, idx)
            return
        assert isinstance(elem, IntegerType)
        x = e.emit(arith.MaxSIOp(x, e.int(CLIP8_MIN, elem)))
        x = e.emit(arith.MinSIOp(x, e.int(CLIP8_MAX, elem)))
        e.store(e.emit(arith.TruncIOp(x, i8)), out, idx)

    loop_nest(em, in_type.get_shape(), body)
