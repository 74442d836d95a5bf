"""Loops of ``bnn.quantize``: ``out = transpose(clip8(steps(x)), permutation)`` in one pass.

Each element is the chain of :class:`~bnnmlir.passes.loops.float_chain.ChainCode` on ``x`` (its
channel: the index in the input's last dimension ``W``), then ``clip8``: ``roundeven``, then
``max(-127)`` and ``min(127)``, then the integer's byte (:func:`clip8_bytes`; NaN is not a
valid input). On vectors the same operations run lane by lane,
so a lane computes exactly the scalar sequence. Three loop shapes, by where the input's last
(contiguous) dimension ``r-1`` goes:

* *contiguous* (``permutation[-1] = r-1``): both sides are contiguous along ``W``; per output
  row, ``W // L`` vectors of ``L = vector_bytes / 4`` floats become ``L`` bytes, then a scalar
  tail;
* *interleaved* (``permutation[-2] = r-1`` and the last output dimension, of size ``C`` with
  ``2 <= C <= 64 / L``, the layout change of an image from NCHW to NHWC): per output row, chunk
  ``w0`` of ``L`` columns loads the ``C`` input rows ``x[.., c, .., w0 : w0 + L]``, quantizes each
  to ``L`` bytes ``q_c`` and stores the ``C*L`` bytes ``out[.., w0 + j, c] = q_c[j]``, written by
  shuffles as one vector; the last ``W % L`` columns are scalar;
* any other permutation: a scalar nest over the output elements.

Threads: the output's leading rows are split as every support op's (``loop_nest``), from
:data:`~bnnmlir.passes.loops.elementwise.MIN_PARALLEL_ELEMENTS` elements.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import prod

from xdsl.dialects import arith, llvm, math, vector
from xdsl.dialects.builtin import DenseArrayBase, VectorType, i8, i32, i64
from xdsl.ir import SSAValue

from bnnmlir.bits import CLIP8_MAX, CLIP8_MIN
from bnnmlir.dialects.bnn_support import QuantizeOp
from bnnmlir.ir_utils import value_shape
from bnnmlir.passes.loops.elementwise import loop_nest, worth_splitting
from bnnmlir.passes.loops.emitter import Emitter
from bnnmlir.passes.loops.float_chain import ChainCode, f32_splat
from bnnmlir.passes.loops.lowering import LoweringContext
from bnnmlir.passes.loops.support import f32_const

MAGIC = 1.5 * 2.0**23
"""Added to an integer-valued float ``|y| < 2**22``, leaves ``y`` in the low bits of the sum."""

MAX_INTERLEAVED_BYTES = 64
"""Bytes of the widest interleaved store (``C * L``): one 512-bit vector."""


def clip8_bytes(em: Emitter, x: SSAValue, lanes: int) -> SSAValue:
    """``clip8`` of ``lanes`` floats (a scalar when ``lanes == 1``): ``i8`` values.

    ``y = min(max(roundeven(x), -127), 127)`` is an integer in ``[-127, 127]``. A scalar goes
    through ``fptosi``; a vector adds ``M = 1.5 * 2**23`` instead (exact: ``|y| < 2**22``), whose
    bits are ``bits(M) + y`` in two's complement, and keeps the low byte: ``y`` itself. (LLVM
    turns a vector ``fptosi`` to bytes into one conversion per lane on x86-64.)"""
    x = em.emit(math.RoundEvenOp(x))
    bounds = [float(CLIP8_MIN), float(CLIP8_MAX), MAGIC]
    lo, hi, magic = ([f32_const(em, b) for b in bounds] if lanes == 1
                     else [f32_splat(em, b, lanes) for b in bounds])
    x = em.emit(arith.MinimumfOp(em.emit(arith.MaximumfOp(x, lo)), hi))
    if lanes == 1:
        return em.emit(arith.TruncIOp(em.emit(arith.FPToSIOp(x, i32)), i8))
    bits = em.emit(llvm.BitcastOp(em.emit(arith.AddfOp(x, magic)), VectorType(i32, [lanes])))
    return em.emit(llvm.TruncOp(bits, VectorType(i8, [lanes])))


def _source(perm: Sequence[int], idx: Sequence[SSAValue]) -> list[SSAValue]:
    """Input indices of output indices ``idx``: ``i[perm[k]] = idx[k]``."""
    src: list[SSAValue] = [None] * len(perm)  # type: ignore[list-item]
    for k, p in enumerate(perm):
        src[p] = idx[k]
    return src


def _shuffle(em: Emitter, a: SSAValue, b: SSAValue, mask: Sequence[int]) -> SSAValue:
    return em.emit(vector.ShuffleOp(a, b, DenseArrayBase.from_list(i64, list(mask)),
                                    result_type=VectorType(i8, [len(mask)])))


def interleave(em: Emitter, parts: Sequence[SSAValue], lanes: int) -> SSAValue:
    """``C`` vectors of ``lanes`` bytes -> ``C * lanes`` bytes, byte ``j*C + c`` = ``parts[c][j]``:
    the parts are concatenated pairwise (odd counts padded with a repeat), then one shuffle
    picks the interleaved order."""
    level, width = list(parts), lanes
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [_shuffle(em, level[k], level[k + 1], range(2 * width))
                 for k in range(0, len(level), 2)]
        width *= 2
    c = len(parts)
    order = [(i % c) * lanes + i // c for i in range(c * lanes)]
    return _shuffle(em, level[0], level[0], order)


def lower_quantize(em: Emitter, op: QuantizeOp, ctx: LoweringContext) -> None:
    """``bnn.quantize`` (module docstring)."""
    x, out = op.input, op.out
    assert out is not None
    perm = op.perm
    in_shape, out_shape = value_shape(x), value_shape(out)
    rank, width = len(in_shape), in_shape[-1]
    steps = op.steps if op.steps.data else None
    code = ChainCode(steps, width, ctx.add_global) if steps is not None else None
    lanes = max(1, ctx.target.vector_bytes // 4)
    parallel = worth_splitting(ctx.parallel, prod(out_shape))

    def quantized(e: Emitter, src: Sequence[SSAValue], w: SSAValue, n: int) -> SSAValue:
        value = e.load(x, src) if n == 1 else e.vload(x, src, n)
        if code is not None:
            value = code.emit(e, value, w, n, lambda _e, _k: value)
        return clip8_bytes(e, value, n)

    channels = out_shape[-1] if rank >= 2 else 0
    if perm[-1] == rank - 1 and lanes > 1 and width >= lanes:
        full = width // lanes * lanes

        def row(e: Emitter, lead: list[SSAValue]) -> None:
            def chunk(e2: Emitter, w: SSAValue, n: int) -> None:
                src = _source(perm, [*lead, w])
                q = quantized(e2, src, w, n)
                if n == 1:
                    e2.store(q, out, [*lead, w])
                else:
                    e2.emit(vector.StoreOp(q, out, [*lead, w]))

            e.loop(0, full, lambda e2, w, _: chunk(e2, w, lanes) or [], step=lanes)
            e.loop(full, width, lambda e2, w, _: chunk(e2, w, 1) or [])

        loop_nest(em, out_shape[:-1], row, parallel)
        return
    if (rank >= 2 and perm[-2] == rank - 1 and lanes > 1 and width >= lanes
            and 2 <= channels <= MAX_INTERLEAVED_BYTES // lanes):
        full = width // lanes * lanes

        def row2(e: Emitter, lead: list[SSAValue]) -> None:
            def chunk(e2: Emitter, w: SSAValue, _s) -> list:
                parts = [quantized(e2, _source(perm, [*lead, w, e2.index(c)]), w, lanes)
                         for c in range(channels)]
                e2.emit(vector.StoreOp(interleave(e2, parts, lanes), out,
                                       [*lead, w, e2.index(0)]))
                return []

            def tail(e2: Emitter, w: SSAValue, _s) -> list:
                for c in range(channels):
                    idx = [*lead, w, e2.index(c)]
                    e2.store(quantized(e2, _source(perm, idx), w, 1), out, idx)
                return []

            e.loop(0, full, chunk, step=lanes)
            e.loop(full, width, tail)

        loop_nest(em, out_shape[:-2], row2, parallel)
        return

    def element(e: Emitter, idx: list[SSAValue]) -> None:
        src = _source(perm, idx)
        e.store(quantized(e, src, src[-1], 1), out, idx)

    loop_nest(em, out_shape, element, parallel)

